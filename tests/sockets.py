"""The TCP listeners of this test process's tree (the driver, the session's Ray instance: GCS,
raylet, workers, agents, Ray Train's workers and their process group), watched while a block runs:
issue 31's listening-socket tests wrap the experiment and production tests' own runs in it, so no
run is made twice. `--address local` and the default local instance, each started the way taast
starts them in a fresh interpreter, are tests/test_ray_env.py's."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading

LOOPBACK = ("127.", "[::1]", "[::ffff:127.")


def _tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for line in subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    mine, stack = set(), [root]
    while stack:
        pid = stack.pop()
        mine.add(pid)
        stack += children.get(pid, [])
    return mine


def _listening(pids: set[int]) -> dict[str, str]:
    out = {}
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            out[line.split()[3]] = line.split('(("', 1)[-1].split('"', 1)[0]
    return out


@contextlib.contextmanager
def watch_listeners(every: float = 0.2):
    """Yield a dict that fills, while the block runs, with {listening address: process name} of
    every TCP listener of this process's tree; empty where `ss` is missing (iproute2)."""
    seen: dict[str, str] = {}
    if shutil.which("ss") is None:
        yield seen
        return
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            seen.update(_listening(_tree(os.getpid())))
            stop.wait(every)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def assert_loopback_only(seen: dict[str, str], must_include: str) -> None:
    """Every listener on loopback; ``must_include`` (a process name part) shows the stage under test ran."""
    if shutil.which("ss") is None:
        return
    assert len(seen) >= 5, seen  # GCS, raylet, workers, agents, the trainer: the count is real
    assert any(must_include in name for name in seen.values()), seen
    assert {a: n for a, n in seen.items() if not a.startswith(LOOPBACK)} == {}
