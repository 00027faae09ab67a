"""ray_env.py: a local instance listens on loopback only."""
import json
import shutil
import subprocess
import sys

import pytest

from tests.sockets import LOOPBACK


# Runs in a fresh interpreter: starts Ray the way taast does (or as Ray's defaults would, for the
# comparison), runs one task, and lists the TCP sockets that its own process tree listens on.
COUNT = r"""
import json, logging, os, subprocess, sys
import ray
from taast_ray.ray_env import ensure_ray
if sys.argv[1] == "taast":
    ensure_ray(None)
elif sys.argv[1] == "taast-local":
    ensure_ray("local")
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


def listening_sockets(mode: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", COUNT, mode], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
@pytest.mark.parametrize("mode", ["taast", "taast-local"])  # no address, and --address local
def test_a_local_instance_listens_on_loopback_only(mode):
    sockets = listening_sockets(mode)
    assert len(sockets) >= 4  # GCS, raylet, a worker, the agents: the count is real
    assert [s for s in sockets if not s.startswith(LOOPBACK)] == []


def test_the_token_auth_notice_is_hidden_unless_verbose():
    """Ray's own notice (authentication_token_setup), silenced around ray.init unless -v. The
    "ray" logger does not propagate, so the records are caught on the notice's own logger."""
    import logging

    from ray._private.authentication import authentication_token_setup as auth

    from taast_ray.ray_env import quiet_ray_start

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    auth.logger.addHandler(handler)
    try:
        with quiet_ray_start(True):
            auth._warn_token_auth_enabled()
        assert seen == []
        with quiet_ray_start(False):
            auth._warn_token_auth_enabled()
        assert len(seen) == 1 and seen[0].startswith("Token authentication is enabled")
    finally:
        auth.logger.removeHandler(handler)


def test_the_stderr_filter_drops_ray_noise_lines_only(tmp_path):
    """File descriptor 2 through the filter, in a fresh process (as the `taast` command)."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from taast_ray import ray_env\n"
        "ray_env.allow_stderr_filter()\n"
        "ray_env._StderrFilter.install(ray_env.RAY_NOISE)\n"
        "os.write(2, b'[2026 E 1 1] core_worker.cc:2465: Actor with class name: X has constructor arguments "
        "in the object store and max_restarts > 0. If ...\\n')\n"
        "os.write(2, b'kept line one\\n')\n"
        "os.write(2, b'\\x1b[33m(raylet)\\x1b[0m WARNING: 10 PYTHON worker processes have been started on node: "
        "83a4 with address: 127.0.0.1, which is 5x the maximum expected startup concurrency (2).\\n')\n"
        "print('Token authentication is enabled for this Ray cluster. Set ...', file=sys.stderr)\n"
        "sys.stderr.write('kept line two, no newline')\n"
        "ray_env.flush_stderr_filter()\n"
        "os._exit(0)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stderr == "kept line one\nkept line two, no newline"


def test_the_raylets_worker_start_warning_is_not_printed_on_stdout(capsys, monkeypatch):
    """Ray prints the raylet's notices on stdout (listen_error_messages → print_to_stdstream),
    where `make demo`'s table is; RAY_NOISE's lines are dropped there, other lines kept."""
    from ray._private import worker as ray_worker

    from taast_ray.ray_env import quiet_raylet_notices

    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)  # restored after
    quiet_raylet_notices()
    quiet_raylet_notices()  # once is enough: not wrapped twice
    warning = ("WARNING: 8 PYTHON worker processes have been started on node: edb4 with address: 127.0.0.1, "
               "which is 4x the maximum expected startup concurrency (2).")
    ray_worker.print_to_stdstream({"lines": [warning], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    assert capsys.readouterr().out == ""
    ray_worker.print_to_stdstream({"lines": ["a worker died: OOM"], "pid": "raylet", "is_err": False},
                                  ignore_prefix=False)
    assert "a worker died: OOM" in capsys.readouterr().out
