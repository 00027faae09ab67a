"""Where the pool comes from: a folder, a parquet manifest or a cloud prefix, read lazily.

``list_pool`` lists names on the driver (a listing, or a manifest's two name columns, never
bytes) and hands them to Ray Data in blocks; ``read_pool_bytes`` then adds ``bytes`` on Ray
workers, with a per-record ``error`` instead of failing.

Conventions:
- A folder's (or prefix's) ``image_id`` is the POSIX path relative to the root, WITH extension:
  unique (``a.jpg`` and ``a.png`` may coexist) and stable wherever the folder is mounted.
- Files with another extension and hidden files or folders (any part starting with ".", e.g.
  macOS ``._x.jpg``) are ignored. A folder holding no images but ``.parquet`` files is a manifest.
- Manifest ``image_id`` is cast to string; a relative ``uri`` is resolved against the manifest's
  folder; a null or empty ``uri`` reads as "missing".
- Order is by ``image_id``; ``limit`` keeps the first ``limit`` in that order.
- Listing faults of a local folder are records, not stops: a symlink to a missing file is listed
  (its read gives "missing: dangling symlink to …") and an unreadable sub-folder is one row
  ``<folder>/`` (its read gives "unreadable: folder, permission denied …"); both reach
  ``errors.parquet`` and the summary's count. Only an unreadable root stops the run.
"""
import bisect
import math
import os
import posixpath
import stat
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray.data

from taast_ray.contracts.detections import check_unique_ids
from taast_ray.errors import ConfigError, InputError
from taast_ray.io import resolve

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_LOCAL = pafs.LocalFileSystem()
_SCHEMA = pa.schema([("image_id", pa.string()), ("uri", pa.string())])


def list_pool(pool, *, limit: int | None = None):
    """Lazy Ray dataset of the pool's images: columns ``image_id`` and ``uri`` (strings)."""
    return listing_dataset(list_pool_table(pool, limit=limit))


def list_pool_table(pool, *, limit: int | None = None) -> pa.Table:
    """The pool's listing (names only, never bytes), sorted by image_id."""
    if limit is not None and not 1 <= limit < 2**63:
        raise ConfigError(f"limit: must be at least 1 (and a 64-bit integer), got {limit}")
    fs, root, prefix, kind = _resolve(os.fspath(pool))
    if kind == pafs.FileType.NotFound:
        raise InputError(f"pool: {pool} does not exist")
    if kind == pafs.FileType.File:
        if not root.lower().endswith(".parquet"):
            raise InputError(f"pool: {pool} is neither a folder nor a .parquet manifest")
        return _manifest(fs, [root], posixpath.dirname(root), prefix, limit, pool)
    files, unreadable = _walk_local(root, pool) if fs is _LOCAL and not prefix else (_list_files(fs, root, pool), [])
    images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    if images or unreadable:
        return _folder(images, root, prefix, limit, unreadable)
    manifests = [f for f in files if f.lower().endswith(".parquet")]
    if manifests:
        return _manifest(fs, manifests, root, prefix, limit, pool)
    raise InputError(f"pool: no images found in {pool}")


def pool_image_id(uri_or_path, root) -> str:
    """The id of a folder-pool image: its POSIX path relative to ``root``, extension kept."""
    path, base = _bare(os.fspath(uri_or_path)), _bare(os.fspath(root)).rstrip("/")
    if not path.startswith(base + "/"):
        raise ValueError(f"{uri_or_path} is not under {root}")
    return path[len(base) + 1:]


def _bare(location: str) -> str:
    """Drop a URI scheme; make local paths absolute, so both spellings compare equal."""
    if "://" in location:
        return location.split("://", 1)[1]
    return os.path.abspath(os.path.expanduser(location)).replace(os.sep, "/")


def _resolve(pool: str):
    """(filesystem, root path in it, prefix turning a listed path back into a uri, root type)."""
    prefix = pool.split("://", 1)[0] + "://" if "://" in pool else ""
    try:
        fs, path = resolve(unquote(pool) if prefix == "file://" else pool) if prefix else (_LOCAL, _bare(pool))
        path = path.rstrip("/") or path
        return fs, path, prefix, fs.get_file_info(path).type
    except (ValueError, OSError) as exc:  # bad scheme, no credentials, unreachable store
        raise InputError(f"pool: cannot open {pool}: {exc}") from exc


def _list_files(fs, root: str, pool) -> list[str]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise InputError(f"pool: cannot list {pool}: {exc}") from exc
    return [i.path for i in infos if i.type == pafs.FileType.File
            and not any(p.startswith(".") for p in pool_image_id(i.path, root).split("/"))]


def _walk_local(root: str, pool) -> tuple[list[str], list[str]]:
    """Files (dangling symlinks included) and unreadable folders under a local root.

    pyarrow's recursive listing drops a symlink to a missing file without a word and raises on
    the first unreadable sub-folder; here both become records the read stage turns into
    ``errors.parquet`` rows ("missing: dangling symlink ...", "unreadable: folder ..."). Symlinked
    folders are followed, as pyarrow does, but not back up the tree (no loops). Hidden names are
    skipped without descending. A name that looks like an image but is no file (a folder, a FIFO,
    a device, a symlink to one) is listed too, so it is accounted for: the read stage never opens
    it and records why (every name the listing sees is scored or in errors.parquet).
    """
    files, unreadable, stack = [], [], [(root, frozenset())]
    while stack:
        folder, ancestors = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in ancestors:
                continue  # a symlink back up the tree
            ancestors = ancestors | {(st.st_dev, st.st_ino)}
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            if folder == root:
                raise InputError(f"pool: cannot list {pool}: {exc.strerror or exc}") from None
            unreadable.append(folder)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    stack.append((entry.path, ancestors))
                    if entry.name.lower().endswith(IMAGE_EXTENSIONS):
                        files.append(entry.path)  # a folder named like an image: "not a file"
                elif entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path)) \
                        or entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(entry.path)
            except OSError:  # a name that vanished or cannot be stat'ed: read it and say why
                files.append(entry.path)
    return files, unreadable


UNDECODABLE = "undecodable-name:"  # a listed name that is not UTF-8: its uri, so the read stage says why


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a file name the OS gave as bytes that are not UTF-8
        return False


def _named(path: str, root: str, prefix: str) -> tuple[str, str]:
    """(image_id, uri) of a listed path; a name that is not UTF-8 gets its bytes escaped (\\xff) as
    its image_id and the UNDECODABLE uri: one row in errors.parquet, the rest of the pool goes on."""
    if _utf8(path):
        return pool_image_id(path, root), prefix + path
    escaped = os.fsencode(path).decode("utf-8", "backslashreplace")
    return pool_image_id(escaped, os.fsencode(root).decode("utf-8", "backslashreplace")), UNDECODABLE + escaped


def _folder(paths: list[str], root: str, prefix: str, limit: int | None, unreadable: list[str] = ()):
    """Rows sorted by image_id; an unreadable folder is one row, its id the folder's path and "/"."""
    rows = [_named(p, root, prefix) for p in paths]
    rows += [(pool_image_id(d, root) + "/", prefix + d) for d in unreadable]
    rows = sorted(rows)[:limit]
    return pa.Table.from_pylist([{"image_id": i, "uri": u} for i, u in rows], schema=_SCHEMA)


LISTING_BLOCK_MIN_ROWS = 32


def listing_dataset(table: pa.Table):
    # Several blocks even for a small pool, so the work downstream spreads over the actors.
    step = max(LISTING_BLOCK_MIN_ROWS, min(2048, math.ceil(table.num_rows / 64)))
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, table.num_rows, step)])


def _manifest(fs, files: list[str], base: str, prefix: str, limit: int | None, pool):
    """Read the two name columns on the driver, like a folder listing: every id must be seen
    before the run starts to refuse duplicates, and a Ray Data sort (a shuffle) costs ~15 s
    even for 3 rows on 2 CPUs."""
    files, tables, starts = sorted(files), [], [0]
    for path in files:
        tables.append(_manifest_file(fs, path, prefix + path, base, prefix))
        starts.append(starts[-1] + tables[-1].num_rows)
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise InputError(f"pool: no images found in {pool}")
    counts = table.group_by("image_id").aggregate([("image_id", "count")])
    dups = sorted(counts.filter(pc.greater(counts["image_id_count"], 1))["image_id"].to_pylist())
    if dups:
        where = [(prefix + files[f], i - starts[f]) for i in
                 pc.indices_nonzero(pc.equal(table["image_id"], dups[0])).to_pylist()
                 for f in [bisect.bisect_right(starts, i) - 1]]
        detail = "; ".join(f"{name} row {row}" for name, row in where)
        raise InputError(f"{where[0][0]}: duplicate image_id {dups[0]!r} ({detail})")
    return table.sort_by("image_id").slice(0, limit)


def _manifest_file(fs, path: str, name: str, base: str, prefix: str) -> pa.Table:
    try:
        missing = {"image_id", "uri"} - set(pq.read_schema(path, filesystem=fs).names)
        if missing:
            raise InputError(f"{name}: manifest lacks column(s) {', '.join(sorted(missing))}")
        table = pq.read_table(path, columns=["image_id", "uri"], filesystem=fs)
    except (pa.ArrowException, OSError) as exc:  # empty, truncated, not parquet
        raise InputError(f"{name}: not a readable parquet manifest ({' '.join(str(exc).split())[:160]})") from None
    try:
        ids, uris = (pc.cast(table[c], pa.string()) for c in ("image_id", "uri"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{name}: image_id and uri must be strings: {exc}") from exc
    if ids.null_count:
        raise InputError(f"{name}: row {pc.index(pc.is_null(ids), True).as_py()}: "
                         "image_id is null")
    empty = pc.equal(pc.utf8_length(ids), 0)
    if pc.any(empty).as_py():  # an id names the image in every output and in the annotators' tasks
        raise InputError(f"{name}: row {pc.index(empty, True).as_py()}: image_id is empty")
    resolved = [None if not u else u if "://" in u or u.startswith("/")
                else prefix + posixpath.normpath(posixpath.join(base, u))
                for u in uris.to_pylist()]  # relative uris: against the manifest's folder
    return pa.table({"image_id": ids, "uri": pa.array(resolved, pa.string())}, schema=_SCHEMA)


def read_pool_bytes(ds, *, batch_size: int = 16, **map_kwargs):
    """Add ``bytes`` (large_binary, null when unreadable), ``error`` (reason or null) and
    ``error_stage`` ("read" where ``error`` is set; see :mod:`taast_ray.error_records`).

    Runs on Ray workers; ``map_kwargs`` go to ``map_batches`` (e.g. ``concurrency``).
    """
    return ds.map_batches(_read_batch, batch_format="pyarrow", batch_size=batch_size,
                          **map_kwargs)


READ_THREADS = 16  # per read task: object stores answer in tens of ms per object, a disk in µs


def _read_batch(table: pa.Table) -> pa.Table:
    uris = table.column("uri").to_pylist()
    with ThreadPoolExecutor(min(READ_THREADS, max(1, len(uris)))) as pool:  # I/O releases the GIL
        results = list(pool.map(read_one, uris))
    data = pa.array([r[0] for r in results], pa.large_binary())
    errors = pa.array([r[1] for r in results], pa.string())
    stages = pa.array(["read" if r[1] else None for r in results], pa.string())
    return table.append_column("bytes", data).append_column("error", errors).append_column("error_stage", stages)


def read_one(uri: str | None):
    if not uri:
        return None, "missing"
    if uri.startswith(UNDECODABLE):
        return None, "unreadable: the file name is not UTF-8 (rename the file)"
    special = _special_file(uri)
    if special:
        return None, special  # a FIFO would block the read for ever, /dev/zero never end
    try:
        fs, path = resolve(uri, per_bucket=True)
        with fs.open_input_stream(path) as stream:
            return stream.read(), None
    except Exception as exc:  # noqa: BLE001  (any storage failure is this record's reason)
        local = _local_reason(uri)
        if local:
            return None, local
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, FileNotFoundError) or "does not exist" in detail:
            return None, "missing"  # object stores may say so in a plain OSError
        if isinstance(exc, IsADirectoryError) or "is a directory" in detail:
            return None, "not a file"
        if isinstance(exc, PermissionError):
            return None, "unreadable: permission denied"
        return None, f"unreadable: {detail[:80]}"


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"))


def _special_file(uri: str) -> str | None:
    """Why a local name (or what its symlink points to) is not a file to read, before opening it."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    try:
        mode = os.stat(resolve(uri)[1]).st_mode
    except OSError:
        return None  # missing or unreadable: the read says so
    kind = next((name for test, name in _SPECIAL if test(mode)), None)
    return f"not a file: {kind}" if kind else None


def _local_reason(uri: str) -> str | None:
    """What the listing recorded a local path for: a dangling symlink or an unreadable folder."""
    if "://" in uri:
        return None
    if os.path.islink(uri) and not os.path.exists(uri):
        return f"missing: dangling symlink to {os.readlink(uri)}"[:200]
    if os.path.isdir(uri):
        try:
            with os.scandir(uri):
                pass
        except OSError as exc:
            return f"unreadable: folder, {(exc.strerror or str(exc)).lower()} (its images are not listed)"
        return "not a file"
    return None


# ---------------------------------------------------------------------------------------------
# a pool given as a Ray Dataset (the Python API): a column of image bytes, or of paths / URIs

DATASET_ID_COLUMNS = ("image_id",)
DATASET_URI_COLUMNS = ("uri", "path")  # Ray's read_images / read_binary_files(include_paths=True): "path"
DATASET_BYTES_COLUMNS = ("bytes",)     # read_binary_files: "bytes"


def dataset_columns(schema_names) -> tuple[str | None, str | None, str | None]:
    """(image_id, uri, bytes) column names of a pool Dataset; one line naming what is missing."""
    names = list(schema_names)
    pick = lambda options: next((c for c in options if c in names), None)  # noqa: E731
    image_id, uri, data = pick(DATASET_ID_COLUMNS), pick(DATASET_URI_COLUMNS), pick(DATASET_BYTES_COLUMNS)
    if data is None and uri is None:
        raise InputError(f"pool Dataset: needs a column of image bytes ('bytes') or of paths / URIs "
                         f"('uri' or 'path'); it has {', '.join(names) or 'none'}")
    if image_id is None and uri is None:
        raise InputError("pool Dataset: a 'bytes' column needs an 'image_id' column (or a 'path' / 'uri' "
                         "column to name each image by)")
    return image_id, uri, data


def _standard_rows(table: pa.Table, image_id: str | None, uri: str | None, data: str | None) -> pa.Table:
    """A pool Dataset's batch as the read stage's output: image_id, uri, bytes, error, error_stage."""
    n = table.num_rows
    uris = (pc.cast(table.column(uri), pa.string()) if uri else pa.nulls(n, pa.string()))
    ids = pc.cast(table.column(image_id), pa.string()) if image_id else uris
    out = pa.table({"image_id": ids, "uri": uris})
    if data is None:
        return _read_batch(out)
    blobs = pc.cast(table.column(data), pa.large_binary())
    missing = pc.is_null(blobs).to_pylist()
    return out.append_column("bytes", blobs).append_column(
        "error", pa.array(["missing" if m else None for m in missing], pa.string())).append_column(
        "error_stage", pa.array(["read" if m else None for m in missing], pa.string()))


def dataset_listing(ds) -> pa.Table:
    """image_id (and uri) of every row of a pool Dataset, on the driver: what the pass counts,
    resumes by and names its files by (strings only, as a folder's listing)."""
    image_id, uri, _ = dataset_columns(ds.schema().names)
    columns = [c for c in (image_id, uri) if c]
    table = pa.concat_tables([pa.table(b) if not isinstance(b, pa.Table) else b
                              for b in ds.select_columns(columns).iter_batches(batch_format="pyarrow")])
    ids = pc.cast(table.column(image_id or uri), pa.string())
    listing = pa.table({"image_id": ids, "uri": pc.cast(table.column(uri), pa.string()) if uri
                        else pa.nulls(len(ids), pa.string())})
    if pc.any(pc.is_null(ids)).as_py():
        raise InputError("pool Dataset: a row has a null image_id")
    check_unique_ids(ids, "pool Dataset")
    return listing


def read_dataset_pool(ds, skip_ids: pa.Array, *, batch_size: int, **map_kwargs):
    """A pool Dataset as the read stage gives a listing: image_id, uri, bytes (read here when the
    Dataset holds paths), error, error_stage; rows whose image_id is in ``skip_ids`` (already
    written, on resume) left out. ``map_kwargs`` go to ``map_batches``."""
    image_id, uri, data = dataset_columns(ds.schema().names)

    def batch(table: pa.Table) -> pa.Table:
        table = table.select([c for c in (image_id, uri, data) if c])
        if len(skip_ids):
            ids = pc.cast(table.column(image_id or uri), pa.string())
            table = table.filter(pc.invert(pc.is_in(ids, value_set=skip_ids)))
        return _standard_rows(table, image_id, uri, data)
    return ds.map_batches(batch, batch_format="pyarrow", batch_size=batch_size, **map_kwargs)
