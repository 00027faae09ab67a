"""ray_env.py: a local instance listens on loopback only."""
import json
import shutil
import subprocess
import sys

import pytest


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
