"""Atomic output: write to a temporary name beside the target, then rename.

A failed run leaves either the previous file or nothing, never half of one. Stage completion
markers (``<stage>.done``) are written last, so their presence means every output is whole.

A run directory may also be an object-store URI (``s3://bucket/run``, ``gs://…``): there an
object appears only once its upload completed, so a single write is already atomic. The helpers
below take either a local path or a URI.
"""
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

_LOCAL = pafs.LocalFileSystem()


def is_uri(path) -> bool:
    """``s3://…``, ``gs://…`` and the like; a plain or ``file://``-less local path is not."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def child(base, *parts: str):
    """``base / parts`` that keeps a URI a URI (``Path`` would fold ``s3://`` into ``s3:/``)."""
    if is_uri(base):
        return "/".join([os.fspath(base).rstrip("/"), *parts])
    return Path(base).joinpath(*parts)


def filesystem(path) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path or an object-store URI."""
    if is_uri(path):
        return pafs.FileSystem.from_uri(os.fspath(path))
    return _LOCAL, os.path.abspath(os.fspath(path))


def exists(path) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def remove_tree(path) -> None:
    """Delete a folder (or a URI prefix) and everything under it; nothing there is fine."""
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.NotFound:
        fs.delete_dir(inner)


def list_parquet(folder) -> list[str]:
    """Parquet files under ``folder`` (recursively), sorted, as paths or URIs like ``folder``.

    Names starting with ``.`` or ``_`` anywhere below the folder are skipped: they are
    temporary or bookkeeping files, as for pyarrow's dataset discovery.
    """
    fs, inner = filesystem(folder)
    if fs.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    prefix = os.fspath(folder).split("://", 1)[0] + "://" if is_uri(folder) else ""
    infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
    return sorted(prefix + i.path for i in infos if i.type == pafs.FileType.File
                  and i.path.endswith(".parquet")
                  and not any(p.startswith((".", "_")) for p in i.path[len(inner):].split("/") if p))


def bare_paths(files: list[str]) -> tuple[pafs.FileSystem | None, list[str]]:
    """One filesystem for a list from :func:`list_parquet` and the paths inside it (``None`` and
    the paths themselves when they are local), for pyarrow's readers."""
    if not files or not is_uri(files[0]):
        return None, list(files)
    fs, _ = filesystem(files[0])
    return fs, [f.split("://", 1)[1] for f in files]


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto the target on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: Path | str, text: str) -> None:
    if is_uri(path):
        fs, inner = filesystem(path)
        with fs.open_output_stream(inner) as out:
            out.write(text.encode())
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_parquet(path: Path | str, table: pa.Table) -> None:
    if is_uri(path):
        fs, inner = filesystem(path)
        pq.write_table(table, inner, filesystem=fs)
        return
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_json(path: Path | str):
    if is_uri(path):
        fs, inner = filesystem(path)
        with fs.open_input_stream(inner) as stream:
            return json.loads(stream.read())
    return json.loads(Path(path).read_text())


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def mark_done(directory: Path | str, stage: str, info: dict | None = None) -> None:
    write_json(child(directory, f"{stage}.done"), info or {})


def is_done(directory: Path | str, stage: str) -> bool:
    return exists(child(directory, f"{stage}.done"))


@contextlib.contextmanager
def staged_directory(target: Path | str) -> Iterator[Path]:
    """Build a whole directory under a temporary name and move it into place on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
