"""Atomic output: write to a temporary name beside the target, then rename.

A failed run leaves either the previous file or nothing, never half of one. Stage completion
markers (``<stage>.done``) are written last, so their presence means every output is whole.

A run directory may also be an object-store URI (``s3://bucket/run``, ``gs://…``): there an
object appears only once its upload completed, so a single write is already atomic. The helpers
below take either a local path or a URI.
"""
import contextlib
import functools
import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

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


BUCKET_SCHEMES = {"s3", "gs", "gcs"}  # paths inside them are "bucket/key"


def resolve(location, *, per_bucket: bool = False) -> tuple[pafs.FileSystem, str]:
    """The one place a location becomes (pyarrow filesystem, path inside it): a local path (made
    absolute), a ``file://`` URI, or an object-store URI (``s3://bucket/key`` → the bucket's
    filesystem and ``bucket/key``). ``per_bucket``: reuse one filesystem per bucket in this process
    (resolving S3's region costs a request; readers of many objects want it)."""
    text = os.fspath(location)
    if "://" not in text:
        return _LOCAL, os.path.abspath(text)
    scheme, rest = text.split("://", 1)
    if scheme == "file":
        return _LOCAL, urlparse(text).path
    if per_bucket and scheme in BUCKET_SCHEMES:
        return _bucket_filesystem(f"{scheme}://{rest.split('/', 1)[0]}"), rest
    return _from_uri(text)


def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's resolver, kept as one seam so tests can stand a local tree in for a bucket."""
    return pafs.FileSystem.from_uri(uri)


@functools.lru_cache(maxsize=64)
def _bucket_filesystem(bucket_uri: str) -> pafs.FileSystem:
    return _from_uri(bucket_uri)[0]


def exists(path) -> bool:
    fs, inner = resolve(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def remove_tree(path) -> None:
    """Delete a folder (or a URI prefix) and everything under it; nothing there is fine."""
    fs, inner = resolve(path)
    if fs.get_file_info(inner).type != pafs.FileType.NotFound:
        fs.delete_dir(inner)


def list_parquet(folder) -> list[str]:
    """Parquet files under ``folder`` (recursively), sorted, as paths or URIs like ``folder``.

    Names starting with ``.`` or ``_`` anywhere below the folder are skipped: they are
    temporary or bookkeeping files, as for pyarrow's dataset discovery.
    """
    fs, inner = resolve(folder)
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
    fs, _ = resolve(files[0])
    return fs, [f.split("://", 1)[1] for f in files]


@contextlib.contextmanager
def new_parents(path: Path | str) -> Iterator[None]:
    """Make ``path``'s missing parent folders for the block; when the block fails, remove the ones
    made here, so a refused write leaves the disk as it found it."""
    path = Path(path)
    made = [p for p in (path.parent, *path.parent.parents) if not (p.exists() or p.is_symlink())]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (something else wrote there meanwhile): leave it and above
                break
        raise


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto the target on success."""
    target = Path(target)
    with new_parents(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp's 0600 is not what open() gives
            os.replace(tmp_path, target)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask: Linux reports it in /proc/self/status; elsewhere reading it means
    setting it (under a lock, set straight back; another thread creating a file in that instant
    would get 022)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_text(path: Path | str, text: str) -> None:
    if is_uri(path):
        fs, inner = resolve(path)
        with fs.open_output_stream(inner) as out:
            out.write(text.encode())
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_parquet(path: Path | str, table: pa.Table) -> None:
    if is_uri(path):
        fs, inner = resolve(path)
        pq.write_table(table, inner, filesystem=fs)
        return
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_json(path: Path | str):
    if is_uri(path):
        fs, inner = resolve(path)
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


# ---------------------------------------------------------------------------------------------
# Output sets. A selection writes several files (scores, selection, pseudo labels, Label Studio
# tasks, errors, summary, config) that only make sense together. They are written into
# OUT/.taast-staging/ first; a manifest (name, bytes, sha256 of every file) written there last is
# the commit point; then the files are moved next to OUT/manifest.json, the manifest last. A crash
# before the commit leaves the previous set untouched (the staging folder is dropped by the next
# run); a crash after it leaves a complete staged set that the next run on OUT moves into place
# (``recover_output_set``). Readers check the published manifest (``check_output_set``).

MANIFEST = "manifest.json"
STAGING = ".taast-staging"


def _file_digest(path) -> tuple[int, str]:
    fs, inner = resolve(path)
    digest, size = hashlib.sha256(), 0
    with fs.open_input_stream(inner) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _read_manifest(path) -> dict | None:
    if not exists(path):
        return None
    try:
        manifest = read_json(path)
    except (ValueError, OSError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def _move(src, dst) -> None:
    fs, inner_src = resolve(src)
    fs.move(inner_src, resolve(dst)[1])


def _delete_file(path) -> None:
    fs, inner = resolve(path)
    if fs.get_file_info(inner).type == pafs.FileType.File:
        fs.delete_file(inner)


def _roll_forward(out, manifest: dict) -> None:
    """Move a committed staged set into place; idempotent, so a crash here is finished later."""
    staging = child(out, STAGING)
    _delete_file(child(out, MANIFEST))  # no manifest while files change: readers see no set
    for name in manifest.get("removes", []):
        _delete_file(child(out, name))
    for name in manifest["files"]:
        if exists(child(staging, name)):
            _move(child(staging, name), child(out, name))
    _move(child(staging, MANIFEST), child(out, MANIFEST))
    remove_tree(staging)


def recover_output_set(out) -> str | None:
    """Finish or drop a publish a crash interrupted: 'completed', 'dropped' or None (nothing)."""
    staging = child(out, STAGING)
    if not exists(staging):
        return None
    manifest = _read_manifest(child(staging, MANIFEST))
    if manifest is None:
        remove_tree(staging)  # never committed: the previous set is the current one
        return "dropped"
    _roll_forward(out, manifest)
    return "completed"


def write_folder_manifest(folder: Path) -> dict:
    """``folder/manifest.json`` for a folder built aside and renamed into place whole (a YOLO
    export): every file under it by relative name, as an output set's manifest lists them, so
    ``check_output_set`` reads either."""
    files = {p.relative_to(folder).as_posix(): dict(zip(("bytes", "sha256"), _file_digest(p)))
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = _manifest(files, [])
    write_json(folder / MANIFEST, manifest)
    return manifest


def _manifest(files: dict, removes: list[str]) -> dict:
    """An output set's manifest: every file's bytes and sha256, and the previous set's files it drops."""
    return {"format": 1, "set_id": uuid.uuid4().hex, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files, "removes": removes}


def publish_output_set(out, writers: dict, *, replaces: tuple[str, ...] = ()) -> dict:
    """Write a whole output set and publish it at once (see above).

    ``writers`` maps each file name to a function writing that file at the path it is given.
    Files of the previous set (its manifest's, and any name in ``replaces``) that the new set
    lacks are removed when it is published. A storage failure (a full disk, a lost mount) raises
    :class:`~taast_ray.errors.StorageError` naming OUT; before the commit the previous set stays.
    """
    from taast_ray.errors import StorageError

    staging = child(out, STAGING)
    try:
        # OUT and the folders above it that this call makes go again if the set is never committed
        with contextlib.nullcontext() if is_uri(out) else new_parents(staging):
            try:
                recover_output_set(out)
                old = _read_manifest(child(out, MANIFEST)) or {"files": {}}
                if not is_uri(out):
                    Path(staging).mkdir()
                files = {}
                for name, write in writers.items():
                    write(child(staging, name))
                    size, sha = _file_digest(child(staging, name))
                    files[name] = {"bytes": size, "sha256": sha}
                removes = sorted((set(old["files"]) | set(replaces)) - set(files))
                manifest = _manifest(files, removes)
                write_json(child(staging, MANIFEST), manifest)  # the commit point
            except BaseException:  # a failed write, an interrupt: the previous set stays
                with contextlib.suppress(OSError):
                    remove_tree(staging)
                raise
    except OSError as exc:  # making OUT's folders included
        raise StorageError(f"{out}: could not write the output set ({_os_reason(exc)}); "
                           f"the previous set, if any, is unchanged") from None
    try:
        _roll_forward(out, manifest)
    except OSError as exc:
        raise StorageError(f"{out}: publishing the output set was interrupted ({_os_reason(exc)}); "
                           f"the next taast command on {out} completes it") from None
    return manifest


def check_output_set(out, *, verify: bool = True) -> dict:
    """The published manifest of OUT, after checking every file it lists is there and whole."""
    from taast_ray.errors import InputError

    manifest = _read_manifest(child(out, MANIFEST))
    if manifest is None:
        state = ("a run was interrupted or is still writing" if exists(child(out, STAGING))
                 else "no taast output set was published there")
        raise InputError(f"{out}: no complete output set ({MANIFEST} missing: {state})")
    for name, entry in manifest["files"].items():
        path = child(out, name)
        if not exists(path):
            raise InputError(f"{path}: listed in {MANIFEST} but missing")
        if verify and _file_digest(path) != (entry["bytes"], entry["sha256"]):
            raise InputError(f"{path}: differs from {MANIFEST} (changed after the set was published)")
    return manifest


def _os_reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__


def check_out_dir(path, flag: str = "--out") -> None:
    """A folder to write into: refused with one line when it, or a folder above it, is a file."""
    from taast_ray.errors import ConfigError

    if is_uri(path):
        return
    for candidate in (Path(path), *Path(path).absolute().parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                what = "is a file" if candidate == Path(path) else f"lies under {candidate}, a file"
                raise ConfigError(f"{flag}: {path} {what}, not a folder")
            return


def write_parquet_chunks(path, chunks) -> None:
    """Tables with one schema into one parquet file, atomically (a URI: one upload)."""
    def write(sink, filesystem=None):
        writer = None
        try:
            for table in chunks:
                if writer is None:
                    writer = pq.ParquetWriter(sink, table.schema, filesystem=filesystem)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()

    if is_uri(path):
        fs, inner = resolve(path)
        write(inner, fs)
        return
    with atomic_path(path) as tmp:
        write(str(tmp))


def read_user_text(path) -> str:
    """A local file a person or another tool wrote (labels, a YOLO list, a configuration): UTF-8,
    with or without the byte-order mark Windows editors write (not content); a one-line
    :class:`InputError` naming the file when it is not UTF-8."""
    from taast_ray.errors import InputError

    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_document(path, missing: str):
    """A local JSON (``.json``) or YAML file's value; one-line :class:`InputError` naming the file
    when it is not there (``missing`` says what was expected) or does not parse."""
    from taast_ray.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {missing}")
    text = read_user_text(path)
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
        except RecursionError:
            raise InputError(f"{path}: not valid JSON (nested too deep)") from None
    import yaml

    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:120]})") from None


def load_yaml(text: str):
    """``yaml.safe_load``, every failure a ``yaml.YAMLError``: PyYAML's constructors raise plain
    Python errors on scalars that look like a type but are none (``2024-13-45``, ``!!int 1.5``,
    ``!!bool maybe``: ValueError, KeyError, AttributeError), and its composer recurses (nesting)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise
    except RecursionError:
        raise yaml.YAMLError("nested too deep") from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise yaml.YAMLError(f"a value that cannot be read ({type(exc).__name__}: {exc})") from None
