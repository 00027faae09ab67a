"""lock.py: one run per directory; a killed run's lock is taken over; released on every exit."""
import json
import os
import signal
import subprocess
import sys

import pytest

from taast_ray import lock
from taast_ray.errors import LockedError
from taast_ray.lock import LOCK_NAME, run_lock

HOLD = """
import sys, time
from taast_ray.lock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def hold_in_subprocess(directory):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_is_refused_with_one_line_naming_the_holder(tmp_path):
    proc = hold_in_subprocess(tmp_path)
    try:
        with pytest.raises(LockedError) as err:
            with run_lock(tmp_path):
                pass
        message = str(err.value)
        assert f"in use by taast pid {proc.pid}" in message and "\n" not in message
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holders_lock_is_taken_over_and_reported(tmp_path):
    proc = hold_in_subprocess(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / LOCK_NAME).exists()  # left behind by the killed process
    stale = []
    with run_lock(tmp_path, on_stale=stale.append) as taken:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert stale and stale[0]["pid"] == proc.pid == taken["pid"]
    assert not (tmp_path / LOCK_NAME).exists()


def test_released_on_an_exception_and_a_folder_it_created_is_removed(tmp_path):
    target = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError):
        with run_lock(target):
            assert (target / LOCK_NAME).exists()
            raise RuntimeError("failed start")
    assert not target.exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("x")
    with run_lock(tmp_path / "kept"):
        pass
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["old.txt"]
    with run_lock(tmp_path / "kept"):  # and it can be taken again at once
        pass


def test_without_flock_the_pid_decides(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, op):  # test double: a filesystem without locks (some NFS mounts, FUSE)
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": lock.socket.gethostname()}))
    stale = []
    with run_lock(tmp_path, on_stale=stale.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            with run_lock(tmp_path):
                pass
    assert stale[0]["pid"] == dead.pid and not (tmp_path / LOCK_NAME).exists()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": "elsewhere"}))
    with pytest.raises(LockedError, match="on elsewhere"):  # another host's pid: never guessed dead
        with run_lock(tmp_path):
            pass
