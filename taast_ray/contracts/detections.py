"""The detections contract (SPEC.md §3): type checks, per-record validation, and flat arrays.

Every file's schema is checked against the contract before its first batch is read; every
record batch is then validated as it is flattened. A bad column or record is one InputError line
naming the file, the record (row in that file, and its image_id) and the column.
"""
from __future__ import annotations

import collections
import functools
import posixpath
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from taast_ray.errors import InputError
from taast_ray.io import bare_paths

REQUIRED_COLUMNS = ("image_id", "boxes", "scores")
# images per record batch: ~85 MB of float32 scores at 8 boxes × 80 classes
BATCH_ROWS = 1 << 15
READ_BUFFER = 1 << 23  # bytes read at a time from a column chunk (a row group can be any size)
BATCH_SCORE_BYTES = 1 << 25  # fewer images per batch where the score rows are wide (LVIS: 1203)
MIN_BATCH_ROWS = 1 << 10
READ_WORKERS = 2  # row groups decoded at once


@dataclass
class FlatDetections:
    image_ids: np.ndarray | None  # (n,) str (None: not asked for)
    offsets: np.ndarray          # (n + 1,) int64: boxes of image i are offsets[i]:offsets[i + 1]
    boxes: np.ndarray            # (m, 4) float32 xyxy pixels
    scores: np.ndarray           # (m, C) float32 class scores
    width: np.ndarray | None = None
    height: np.ndarray | None = None
    uri: np.ndarray | None = None
    where: "_Where | None" = field(default=None, repr=False)  # names records in messages

    @property
    def num_images(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_boxes(self) -> int:
        return int(self.offsets[-1])

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def box_image(self) -> np.ndarray:
        """Row index of the image each box belongs to."""
        return np.repeat(np.arange(self.num_images, dtype=np.int64), self.counts)

    def rows(self, rows: np.ndarray) -> "FlatDetections":
        """These images (in this order) with their boxes, score rows and optional columns."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.counts[rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        box_rows = np.concatenate([np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows]) \
            if len(rows) else np.zeros(0, np.int64)
        pick = (lambda a: None if a is None else a[rows])
        return FlatDetections(self.image_ids[rows], offsets, self.boxes[box_rows], self.scores[box_rows],
                              pick(self.width), pick(self.height), pick(self.uri))


# ---------------------------------------------------------------------------------------------
# column types (SPEC.md §3)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _nested_of(t: pa.DataType, value_ok) -> bool:
    return _is_list(t) and _is_list(t.value_type) and value_ok(t.value_type.value_type)


_NUMBER = (lambda t: pa.types.is_floating(t) or pa.types.is_integer(t))
# column -> (check, what the contract declares)
COLUMN_TYPES = {
    "image_id": (_is_string, "string"),
    "boxes": (lambda t: _nested_of(t, _NUMBER), "list<list<float32>> (4 numbers per box)"),
    "scores": (lambda t: _nested_of(t, pa.types.is_floating), "list<list<float32>> (C floats per box)"),
    "width": (_NUMBER, "a number (int32 or float)"),
    "height": (_NUMBER, "a number (int32 or float)"),
    "uri": (_is_string, "string"),
    "error": (lambda t: _is_string(t) or pa.types.is_null(t), "string"),
    "error_stage": (lambda t: _is_string(t) or pa.types.is_null(t), "string"),
    "converted": (lambda t: _is_string(t) or pa.types.is_null(t), "string"),
}


def type_name(t: pa.DataType) -> str:
    """An Arrow type as the contract writes it: list<list<float>>, not list<element: list<…>>."""
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{type_name(t.value_type)}, {t.list_size}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{'large_' if pa.types.is_large_list(t) else ''}list<{type_name(t.value_type)}>"
    return str(t)


def check_schema(schema: pa.Schema, source: str) -> None:
    """Every contract column present with its declared type; one line naming the first that is not."""
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
    for name, (ok, declared) in COLUMN_TYPES.items():
        if name in schema.names and not ok(schema.field(name).type):
            raise InputError(f"{source}: column {name!r} must be {declared}, got "
                             f"{type_name(schema.field(name).type)} (every record)")


# ---------------------------------------------------------------------------------------------
# one table (or record batch) to flat arrays


def flatten_detections(table: pa.Table, num_classes: int, source: str = "detections",
                       check_unique: bool = True, first_record: int = 0,
                       check_scores: bool = True, ids_as_objects: bool = True) -> FlatDetections:
    """Validate one table of the contract and flatten it; ``first_record`` numbers its rows
    within ``source`` for the messages. ``check_scores=False`` leaves the [0, 1] range check to
    the caller (the streaming pass checks it on the row min / max it computes anyway).
    ``ids_as_objects=False`` leaves ``image_ids`` None (the streaming pass keeps them in Arrow)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
    if table.num_rows == 0:
        raise InputError(f"{source}: the pool is empty (no rows)")
    check_schema(table.schema, source)
    ids = _one_chunk(pc.cast(table.column("image_id"), pa.string()))
    if ids.null_count:
        raise InputError(f"{source}: record {first_record + _first(pc.is_null(ids))} has a null "
                         f"image_id (column 'image_id')")
    image_ids = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object) if ids_as_objects else None
    if check_unique:
        check_unique_ids(ids, source)
    where = _Where(source, first_record, ids)
    boxes_col = _one_chunk(table.column("boxes"))
    scores_col = _one_chunk(table.column("scores"))
    counts = _list_lengths(boxes_col)
    score_counts = _list_lengths(scores_col)
    ragged = counts != score_counts
    if ragged.any():
        i = int(np.flatnonzero(ragged)[0])
        raise InputError(f"{where.record(i)} has {counts[i]} boxes but {score_counts[i]} score rows "
                         f"(columns 'boxes' and 'scores')")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    where.offsets = offsets
    boxes = _inner_matrix(boxes_col, 4, where, "boxes")
    scores = _inner_matrix(scores_col, num_classes, where, "scores")
    if check_scores:
        check_score_range(scores.min(axis=1, initial=np.inf), scores.max(axis=1, initial=-np.inf), where)
    _check_boxes(boxes, where)
    return FlatDetections(image_ids, offsets, boxes, scores, *_optional(table, where), where=where)


def _one_chunk(col) -> pa.Array:
    """A column as one array: its only chunk as it is (combine_chunks copies even that one)."""
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


@dataclass
class _Where:
    """Names a record for a message: file, row in the file, image_id."""
    source: str
    first_record: int
    image_ids: pa.Array
    offsets: np.ndarray | None = None

    def record(self, row: int) -> str:
        return f"{self.source}: record {self.first_record + row}, image {self.image_ids[row].as_py()!r}"

    def box(self, box: int) -> str:
        return self.record(int(np.searchsorted(self.offsets, box, side="right") - 1))


def _optional(table: pa.Table, where: _Where):
    def col(name, dtype):
        if name not in table.column_names:
            return None
        values = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=dtype)
        if dtype is np.float64:
            bad = ~np.isfinite(values) | (values <= 0)
            if bad.any():
                raise InputError(f"{where.record(int(np.flatnonzero(bad)[0]))} has a null, non-finite "
                                 f"or non-positive {name!r}")
        return values
    return col("width", np.float64), col("height", np.float64), col("uri", object)


def _first(mask) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def check_unique_ids(ids: pa.Array, source: str) -> None:
    counts = pc.value_counts(ids)
    duplicated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(duplicated):
        raise InputError(f"{source}: duplicate image_id {duplicated[0].as_py()!r}")


def _list_lengths(col: pa.Array) -> np.ndarray:
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if col.null_count:  # a null list means "no boxes" only if both columns agree; treat as empty
        lengths = np.where(np.isnan(lengths.astype(float)), 0, lengths)
    return lengths.astype(np.int64)


def _inner_matrix(col: pa.Array, width: int, where: _Where, name: str) -> np.ndarray:
    rows = col.flatten()  # one entry per box
    if rows.null_count:
        raise InputError(f"{where.box(_first(pc.is_null(rows)))} has a null {name} row (column {name!r})")
    lengths = pc.list_value_length(rows).to_numpy(zero_copy_only=False)
    bad = lengths != width
    if bad.any():
        box = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where.box(box)} has a {name} row of width {lengths[box]}, "
                         f"expected {width} (column {name!r})")
    values = rows.flatten()
    if values.null_count:
        raise InputError(f"{where.box(_first(pc.is_null(values)) // width)} has a null {name} "
                         f"value (column {name!r})")
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(-1, width)


EXEMPLAR_COLUMN = "exemplar"  # per image: C floats v_k(x) = max_b q_{k,b} (selection/exemplar.py)


def exemplar_rows(table: pa.Table, num_classes: int, source: str = "detections",
                  first_record: int = 0) -> np.ndarray:
    """The ``exemplar`` column as an (n, C) float32 matrix: one row of C values in [0, 1] per
    record (the "exemplar" rarity rule's v(x)); one line naming the first bad record."""
    where = _Where(source, first_record, table.column("image_id"))
    if EXEMPLAR_COLUMN not in table.column_names:
        raise InputError(f"{source}: no {EXEMPLAR_COLUMN!r} column (C floats per image, the exemplar "
                         f"posteriors the live pass writes for an exemplar-rarity strategy)")
    col = _one_chunk(table.column(EXEMPLAR_COLUMN))
    if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type)
            or pa.types.is_large_list(col.type)) or not pa.types.is_floating(col.type.value_type):
        raise InputError(f"{source}: column {EXEMPLAR_COLUMN!r} must be a list of {num_classes} floats per "
                         f"image, got {type_name(col.type)} (every record)")
    if col.null_count:
        raise InputError(f"{where.record(_first(pc.is_null(col)))} has a null {EXEMPLAR_COLUMN!r} row")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if (lengths != num_classes).any():
        row = _first(lengths != num_classes)
        raise InputError(f"{where.record(row)} has an {EXEMPLAR_COLUMN!r} row of width {lengths[row]}, "
                         f"expected {num_classes}")
    values = col.flatten()
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    bad = ~((flat >= 0) & (flat <= 1))  # NaN, a null (NaN here) or out of range
    if values.null_count or bad.any():
        row = _first(bad) // max(num_classes, 1)
        raise InputError(f"{where.record(row)} has an {EXEMPLAR_COLUMN!r} value outside [0, 1]")
    return flat.reshape(len(col), num_classes)


def check_score_range(row_min: np.ndarray | None, row_max: np.ndarray, where: "_Where") -> None:
    """Every class score in [0, 1]: NaN fails both comparisons (``row_min`` None: every score is
    already known to be ≥ 0)."""
    bad_rows = ~(row_max <= 1) if row_min is None else ~(row_min >= 0) | ~(row_max <= 1)
    if bad_rows.any():
        raise InputError(f"{where.box(int(np.flatnonzero(bad_rows)[0]))} has a NaN, infinite or "
                         f"out-of-range [0, 1] class score (column 'scores')")


def _check_boxes(boxes: np.ndarray, where: _Where) -> None:
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        raise InputError(f"{where.box(int(np.flatnonzero(bad)[0]))} has a non-finite box (column 'boxes')")
    # x2 < x1 or y2 < y1 is not xyxy (§7: negative-area boxes are malformed); zero extent is
    # kept, since a detector's boxes clipped at the image border can be degenerate
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        box = int(np.flatnonzero(inverted)[0])
        raise InputError(f"{where.box(box)} has a box with x2 < x1 or y2 < y1 "
                         f"({', '.join(f'{v:g}' for v in boxes[box])}; column 'boxes' is xyxy)")


# ---------------------------------------------------------------------------------------------
# a parquet file, folder or file list, batch by batch


class DetectionsSource:
    """The parquet files of a detections input, read record batch by record batch.

    ``path``: a file, a folder of files, or a list of files (local paths or URIs).
    """

    def __init__(self, path: str | Path | list):
        files = [str(f) for f in path] if isinstance(path, list) else None
        self.path = posixpath.dirname(files[0]) if files else Path(path)
        if not files and not self.path.exists():
            raise InputError(f"{self.path}: detections file not found")
        try:
            fs, sources = bare_paths(files) if files else (None, str(self.path))
            self.dataset = pads.dataset(sources, format="parquet", filesystem=fs)
            self.fragments = list(self.dataset.get_fragments())
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable parquet file ({_short(exc)})") from None
        self.single = not files and self.path.is_file()

    def name(self, fragment) -> str:
        return str(self.path) if self.single else fragment.path

    def schema_names(self) -> list[str]:
        return self.dataset.schema.names

    def num_rows(self) -> int:
        """Records in the input by the files' footers (0 where a footer cannot be read)."""
        try:
            return sum(int(f.metadata.num_rows) for f in self.fragments)
        except (pa.ArrowException, OSError, AttributeError):
            return 0

    def batches(self, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS,
                check: bool = True, workers: int = READ_WORKERS) -> Iterator[tuple[str, int, pa.Table]]:
        """(file, row of the batch's first record in that file, batch as a table), in file order.

        Each row group is read through a buffered stream without pre-buffering, so memory holds
        the batches in flight, not the file (Arrow's dataset scanner pre-buffers every row group
        it plans to read, which held the whole 3.3 GB file of 1M images). Decoding the nested
        score lists is the largest cost of the pass, so ``workers`` row groups are decoded at
        once on threads (Arrow releases the GIL), each one batch ahead of the consumer; the
        batches still come out in file order, and an error where it occurs in that order.
        A batch holds at most ``batch_rows`` records and about BATCH_SCORE_BYTES of scores.
        """
        yield from _ordered_parallel(self._tasks(columns, batch_rows, check), max(1, workers))

    def _tasks(self, columns, batch_rows, check):
        """One task per row group, in order: a callable returning that group's batches."""
        for fragment in self.fragments:
            source = self.name(fragment)
            try:
                schema = fragment.physical_schema
                if check:
                    check_schema(schema, source)
                wanted = [c for c in (columns or schema.names) if c in schema.names]
                meta = fragment.metadata
                rows = _batch_rows(meta, schema, wanted, batch_rows)
            except InputError as exc:
                yield _raising(exc)
                return
            except (pa.ArrowException, OSError) as exc:
                yield _raising(InputError(f"{source}: not a readable parquet file ({_short(exc)})"))
                return
            at = 0
            for group in range(meta.num_row_groups):
                yield functools.partial(_read_group, fragment, source, meta, wanted, group, at, rows)
                at += meta.row_group(group).num_rows


def _batch_rows(meta, schema: pa.Schema, wanted: list[str], batch_rows: int) -> int:
    """batch_rows, fewer where the scores are wide (many classes or boxes per image)."""
    if "scores" not in wanted or not meta.num_rows:
        return batch_rows
    try:
        leaf = next(i for i in range(meta.num_columns)
                    if meta.schema.column(i).path.split(".")[0] == "scores")
        values = sum(meta.row_group(g).column(leaf).num_values for g in range(meta.num_row_groups))
    except (StopIteration, pa.ArrowException, OSError):
        return batch_rows
    per_row = max(values / meta.num_rows, 1.0) * 4
    return max(MIN_BATCH_ROWS, min(batch_rows, int(BATCH_SCORE_BYTES / per_row)))


def _read_group(fragment, source: str, meta, wanted: list[str], group: int, at: int, rows: int):
    try:
        with fragment.filesystem.open_input_file(fragment.path) as f:
            reader = pq.ParquetFile(f, metadata=meta, buffer_size=READ_BUFFER, pre_buffer=False)
            for batch in reader.iter_batches(batch_size=rows, row_groups=[group], columns=wanted,
                                             use_threads=True):
                yield source, at, pa.Table.from_batches([batch])
                at += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source}: not a readable parquet file ({_short(exc)})") from None


def _raising(exc: BaseException):
    def task():
        raise exc
        yield  # noqa: unreachable: makes this a generator
    return task


_DONE = object()


def _ordered_parallel(tasks: Iterator, workers: int, depth: int = 1) -> Iterator:
    """The items of each task (a callable returning an iterator), task after task, with up to
    ``workers`` tasks running at once on threads, each at most ``depth`` items ahead.

    A task's exception is raised when the consumer reaches it, so errors keep their order.
    """
    running: collections.deque = collections.deque()
    stop = threading.Event()

    def produce(task, slots: queue.Queue):
        def put(item) -> bool:
            while not stop.is_set():
                try:
                    slots.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False
        try:
            for item in task():
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_DONE, exc))

    def start(task) -> None:
        slots: queue.Queue = queue.Queue(maxsize=depth)
        thread = threading.Thread(target=produce, args=(task, slots), daemon=True,
                                  name="detections-reader")
        thread.start()
        running.append((thread, slots))

    tasks = iter(tasks)
    pending = True

    def fill() -> None:
        nonlocal pending
        while pending and len(running) < workers:
            task = next(tasks, None)
            if task is None:
                pending = False
            else:
                start(task)

    try:
        fill()
        while running:
            thread, slots = running[0]
            while True:
                item, exc = slots.get()
                if item is _DONE:
                    break
                yield item
            running.popleft()
            thread.join()
            if exc is not None:
                raise exc
            fill()
    finally:
        stop.set()
        for thread, slots in running:  # unblock producers waiting on a full queue
            while thread.is_alive():
                try:
                    slots.get_nowait()
                except queue.Empty:
                    thread.join(0.1)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def without_failed(table: pa.Table, failed: list | None) -> pa.Table:
    """The rows without an ``error`` (the live pass's undecodable records); those go to ``failed``."""
    if "error" not in table.column_names:
        return table
    bad = pc.is_valid(table.column("error"))
    if failed is not None and pc.any(bad).as_py():
        keep = [c for c in ("image_id", "uri", "error", "error_stage") if c in table.column_names]
        failed.append(table.filter(bad).select(keep))
    return table.filter(pc.invert(bad))
