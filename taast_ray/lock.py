"""One taast run per run / output directory at a time.

``OUT/.taast.lock`` names its holder (pid, host, start time, command). On a local or NFS path
the holder also keeps an exclusive ``flock`` on it, which the kernel drops when the process dies
however it dies: a lock file left by a killed run is stale as soon as its process is gone, and
the next run takes it over (saying whose it was). Where ``flock`` is not supported, and on object
stores (``s3://``, which have no locks), the file alone is the lock and its pid decides: the same
host with that pid no longer running means stale. An object store check-then-write is not atomic;
two runs starting within the same second may both proceed there.

The lock is released on every exit (return, exception, Ctrl-C); a folder that the lock itself
created and that is still empty is removed with it, so a refused or failed start leaves the
directory as it was.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from taast_ray.errors import LockedError, StorageError
from taast_ray.io import child, exists, is_uri, read_json, write_json

LOCK_NAME = ".taast.lock"


def holds_work(directory: Path) -> bool:
    """Whether a local directory holds anything but this lock: the CLI takes the lock before the
    run or experiment checks that its directory is new, so the lock alone is not earlier work."""
    return directory.is_dir() and any(p.name != LOCK_NAME for p in directory.iterdir())


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(["taast", *sys.argv[1:]])[:300]}


def _describe(info: dict | None) -> str:
    if not info:
        return "another taast run"
    return (f"taast pid {info.get('pid')} on {info.get('host')} (since {info.get('started')}: "
            f"{info.get('command', '?')})")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _parse(text: str) -> dict | None:
    try:
        info = json.loads(text)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _refuse(directory, info: dict | None) -> LockedError:
    return LockedError(f"{directory}: in use by {_describe(info)}; wait for it to finish or stop it "
                       f"(a killed run's lock is taken over automatically)")


@contextlib.contextmanager
def run_lock(directory, *, on_stale=None) -> Iterator[dict | None]:
    """Hold the directory's lock for the ``with`` block; yields the stale holder taken over, if any.

    ``on_stale(info)`` is called with a dead holder's details before its lock is taken over.
    Raises :class:`LockedError` (one line naming the holder) when a live run holds it.
    """
    if is_uri(directory):
        with _file_lock_uri(directory, on_stale) as stale:
            yield stale
        return
    path = Path(directory)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{path}: cannot create the directory ({exc.strerror or exc})") from None
    try:
        with _local_lock(path / LOCK_NAME, directory, on_stale) as stale:
            yield stale
    finally:
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if still empty: nothing was started there


@contextlib.contextmanager
def _local_lock(lock: Path, directory, on_stale) -> Iterator[dict | None]:
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _parse(os.pread(fd, 4096, 0).decode(errors="replace"))
            os.close(fd)
            raise _refuse(directory, info) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            fd = None  # this filesystem has no flock: the pid in the file decides
            break
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder released (and unlinked) it between our open and flock: retry
    if fd is None:
        with _pid_file_lock(lock, directory, on_stale) as stale:
            yield stale
        return
    try:
        stale = _parse(os.pread(fd, 4096, 0).decode(errors="replace"))
        if stale and on_stale is not None:
            on_stale(stale)  # its process died holding it (flock is released with the process)
        data = json.dumps(_holder()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        yield stale
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # still holding the flock: nobody can take it in between
        os.close(fd)


def _stale(info: dict | None) -> bool:
    """A pid-file lock is stale when its process, on this host, is gone."""
    if not info or not isinstance(info.get("pid"), int):
        return True
    return info.get("host") == socket.gethostname() and not pid_alive(info["pid"])


@contextlib.contextmanager
def _pid_file_lock(lock: Path, directory, on_stale) -> Iterator[dict | None]:
    stale = None
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                info = _parse(lock.read_text(errors="replace"))
                if not _stale(info):
                    raise _refuse(directory, info) from None
                if on_stale is not None and info:
                    on_stale(info)
                stale = info
                lock.unlink()
    try:
        os.write(fd, json.dumps(_holder()).encode())
        os.close(fd)
        yield stale
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


@contextlib.contextmanager
def _file_lock_uri(directory, on_stale) -> Iterator[dict | None]:
    from taast_ray.io import resolve

    lock = child(directory, LOCK_NAME)
    stale = None
    if exists(lock):
        try:
            info = read_json(lock)
        except (ValueError, OSError):
            info = None
        if not _stale(info if isinstance(info, dict) else None):
            raise _refuse(directory, info)
        if on_stale is not None and info:
            on_stale(info)
        stale = info
    mine = _holder()
    write_json(lock, mine)
    try:
        yield stale
    finally:
        with contextlib.suppress(OSError, ValueError):
            if read_json(lock) == mine:
                fs, inner = resolve(lock)
                fs.delete_file(inner)
