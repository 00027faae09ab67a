"""ray_env.py: a local instance listens on loopback only; --address is checked before Ray starts."""
import json
import shutil
import subprocess
import sys
import time

import pytest

from taast_ray.errors import ConfigError
from taast_ray.address import check_address, split_address

# Runs in a fresh interpreter: starts Ray the way taast does (or as Ray's defaults would, for the
# comparison), runs one task, and lists the TCP sockets that its own process tree listens on.
COUNT = r"""
import json, logging, os, subprocess, sys
import ray
from taast_ray.ray_env import ensure_ray
if sys.argv[1] == "taast":
    ensure_ray(None)
else:
    ray.init(include_dashboard=False, logging_level=logging.WARNING, configure_logging=False, log_to_driver=False)
ray.get(ray.remote(lambda: 1).remote())
children = {}
for line in subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.splitlines():
    pid, ppid = map(int, line.split())
    children.setdefault(ppid, []).append(pid)
mine, stack = set(), [os.getpid()]
while stack:
    pid = stack.pop(); mine.add(pid); stack += children.get(pid, [])
listening = [line.split()[3] for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
             if any(f"pid={pid}," in line for pid in mine)]
print(json.dumps(listening))
"""
LOOPBACK = ("127.", "[::1]", "[::ffff:127.")


def listening_sockets(mode: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", COUNT, mode], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_a_local_instance_listens_on_loopback_only():
    sockets = listening_sockets("taast")
    assert len(sockets) >= 4  # GCS, raylet, a worker, the agents: the count is real
    assert [s for s in sockets if not s.startswith(LOOPBACK)] == []


@pytest.mark.parametrize("text, parsed", [
    ("10.0.0.5:6379", ("10.0.0.5", 6379)), ("head", ("head", 6379)), ("ray://head:10001", ("head", 10001)),
    ("ray://head", ("head", 10001)), ("[::1]:7000", ("::1", 7000)), ("auto", None), ("local", None),
])
def test_addresses_that_parse(text, parsed):
    assert split_address(text) == parsed


@pytest.mark.parametrize("text, reason", [
    ("notahost:abc", "port must be a number"), ("h:0", "port must be a number"), ("h:70000", "port must be"),
    (":6379", "host is empty"), ("http://h:8265", "not an address"), ("::1:6379", "needs brackets"),
    ("a b:1", "not an address"),
])
def test_addresses_that_do_not(text, reason):
    with pytest.raises(ValueError, match=reason):
        split_address(text)
    with pytest.raises(ConfigError, match=f"ray.address: .*{reason}"):
        check_address(text)


def test_an_unreachable_address_fails_fast_with_one_line():
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        check_address("127.0.0.1:1")
    assert time.perf_counter() - start < 5 and "cannot connect to 127.0.0.1:1" in str(err.value)
    with pytest.raises(ConfigError, match="cannot resolve host 'notahost.invalid'"):
        check_address("notahost.invalid:6379")
