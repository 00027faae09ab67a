"""The detections contract (SPEC.md §3) as flat arrays: one row of C scores per box, plus offsets.

Validation is vectorised over the whole table; the first bad record is named in a one-line
InputError together with the file it came from.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from taast_ray.errors import InputError
from taast_ray.io import bare_paths

REQUIRED_COLUMNS = ("image_id", "boxes", "scores")


@dataclass
class FlatDetections:
    image_ids: np.ndarray        # (n,) str
    offsets: np.ndarray          # (n + 1,) int64: boxes of image i are offsets[i]:offsets[i + 1]
    boxes: np.ndarray            # (m, 4) float32 xyxy pixels
    scores: np.ndarray           # (m, C) float32 class scores
    width: np.ndarray | None = None
    height: np.ndarray | None = None
    uri: np.ndarray | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def box_image(self) -> np.ndarray:
        """Row index of the image each box belongs to."""
        return np.repeat(np.arange(self.num_images, dtype=np.int64), self.counts)


def read_detections(path: str | Path | list, num_classes: int, batch_rows: int = 1 << 16,
                    failed: list | None = None) -> FlatDetections:
    """Stream a parquet file (or folder of them) into flat arrays, validating batch by batch.

    Reading the whole table first and flattening it would hold the scores two or three times
    over (Arrow's read buffers, then a combined copy); here one pass over the small ``boxes``
    column sizes the arrays, and each record batch is validated and copied into place.
    ``path`` may also be a list of files. Rows with an ``error`` (the live pass's undecodable
    records) are left out and, when ``failed`` is a list, appended to it as tables.
    """
    files = [str(f) for f in path] if isinstance(path, list) else None
    path = posixpath.dirname(files[0]) if files else Path(path)
    if not files and not path.exists():
        raise InputError(f"{path}: detections file not found")
    try:
        fs, sources = bare_paths(files) if files else (None, str(path))
        dataset = pads.dataset(sources, format="parquet", filesystem=fs)
        missing = [c for c in REQUIRED_COLUMNS if c not in dataset.schema.names]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
        total = sum(pc.sum(pc.list_value_length(b.column(0))).as_py() or 0
                    for b in dataset.to_batches(columns=["boxes"]))
        parts = _Parts(total, num_classes)
        # Arrow's default read-ahead (16 batches) would hold ~2.7 GB of scores at 1M images
        for batch in dataset.to_batches(batch_size=batch_rows, batch_readahead=2, fragment_readahead=1):
            table = _without_failed(pa.Table.from_batches([batch]), failed)
            if table.num_rows:
                parts.add(flatten_detections(table, num_classes, source=str(path), check_unique=False))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None
    if not parts.ids:
        raise InputError(f"{path}: the pool is empty (no rows)")
    return parts.finish(str(path))


def _without_failed(table: pa.Table, failed: list | None) -> pa.Table:
    if "error" not in table.column_names:
        return table
    bad = pc.is_valid(table.column("error"))
    if failed is not None and pc.any(bad).as_py():
        keep = [c for c in ("image_id", "uri", "error", "error_stage") if c in table.column_names]
        failed.append(table.filter(bad).select(keep))
    return table.filter(pc.invert(bad))


class _Parts:
    """Validated batches copied into preallocated arrays."""

    def __init__(self, total_boxes: int, num_classes: int):
        self.scores = np.empty((total_boxes, num_classes), np.float32)
        self.boxes = np.empty((total_boxes, 4), np.float32)
        self.at = 0
        self.ids, self.counts, self.extra = [], [], {"width": [], "height": [], "uri": []}

    def add(self, part: FlatDetections) -> None:
        n = int(part.offsets[-1])
        self.scores[self.at:self.at + n] = part.scores
        self.boxes[self.at:self.at + n] = part.boxes
        self.at += n
        self.ids.append(part.image_ids)
        self.counts.append(part.counts)
        for name in self.extra:
            self.extra[name].append(getattr(part, name))

    def finish(self, source: str) -> FlatDetections:
        image_ids = np.concatenate(self.ids)
        _check_unique(pa.array(image_ids, pa.string()), source)
        offsets = np.zeros(len(image_ids) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(self.counts), out=offsets[1:])
        extra = {k: None if any(v is None for v in vs) else np.concatenate(vs) for k, vs in self.extra.items()}
        return FlatDetections(image_ids, offsets, self.boxes[:self.at], self.scores[:self.at], **extra)


def flatten_detections(table: pa.Table, num_classes: int, source: str = "detections",
                       check_unique: bool = True) -> FlatDetections:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
    if table.num_rows == 0:
        raise InputError(f"{source}: the pool is empty (no rows)")
    ids = pc.cast(table.column("image_id"), pa.string()).combine_chunks()
    if ids.null_count:
        raise InputError(f"{source}: row {_first(pc.is_null(ids))} has a null image_id")
    image_ids = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    if check_unique:
        _check_unique(ids, source)
    boxes_col = table.column("boxes").combine_chunks()
    scores_col = table.column("scores").combine_chunks()
    counts = _list_lengths(boxes_col, image_ids, source, "boxes")
    score_counts = _list_lengths(scores_col, image_ids, source, "scores")
    ragged = counts != score_counts
    if ragged.any():
        i = int(np.flatnonzero(ragged)[0])
        raise InputError(f"{source}: image {image_ids[i]!r} has {counts[i]} boxes but "
                         f"{score_counts[i]} score rows")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    boxes = _inner_matrix(boxes_col, 4, offsets, image_ids, source, "boxes")
    scores = _inner_matrix(scores_col, num_classes, offsets, image_ids, source, "scores")
    _check_scores(scores, offsets, image_ids, source)
    _check_boxes(boxes, offsets, image_ids, source)
    return FlatDetections(image_ids, offsets, boxes, scores, *_optional(table))


def _optional(table: pa.Table):
    def col(name, dtype):
        if name not in table.column_names:
            return None
        return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=dtype)
    return col("width", np.float64), col("height", np.float64), col("uri", object)


def _first(mask) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _check_unique(ids: pa.Array, source: str) -> None:
    counts = pc.value_counts(ids)
    duplicated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(duplicated):
        raise InputError(f"{source}: duplicate image_id {duplicated[0].as_py()!r}")


def _list_lengths(col: pa.Array, image_ids, source: str, name: str) -> np.ndarray:
    if not pa.types.is_list(col.type) and not pa.types.is_large_list(col.type) \
            and not pa.types.is_fixed_size_list(col.type):
        raise InputError(f"{source}: column {name!r} must be a list of lists, got {col.type}")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if col.null_count:  # a null list means "no boxes" only if both columns agree; treat as empty
        lengths = np.where(np.isnan(lengths.astype(float)), 0, lengths)
    return lengths.astype(np.int64)


def _inner_matrix(col: pa.Array, width: int, offsets, image_ids, source: str, name: str) -> np.ndarray:
    rows = col.flatten()  # one entry per box
    if rows.null_count:
        box = _first(pc.is_null(rows))
        raise InputError(f"{source}: image {_image_of(box, offsets, image_ids)!r} has a null {name} row")
    lengths = pc.list_value_length(rows).to_numpy(zero_copy_only=False)
    bad = lengths != width
    if bad.any():
        box = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}: image {_image_of(box, offsets, image_ids)!r} has a {name} row of "
                         f"width {lengths[box]}, expected {width}")
    values = rows.flatten()
    if values.null_count:
        box = _first(pc.is_null(values)) // width
        raise InputError(f"{source}: image {_image_of(box, offsets, image_ids)!r} has a null {name} value")
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(-1, width)


def _image_of(box: int, offsets: np.ndarray, image_ids) -> str:
    return image_ids[int(np.searchsorted(offsets, box, side="right") - 1)]


def _check_scores(scores: np.ndarray, offsets, image_ids, source: str) -> None:
    # Row min/max instead of elementwise masks: no (m, C) temporaries, and NaN fails both tests.
    bad_rows = ~(scores.min(axis=1, initial=np.inf) >= 0) | ~(scores.max(axis=1, initial=-np.inf) <= 1)
    if bad_rows.any():
        box = int(np.flatnonzero(bad_rows)[0])
        raise InputError(f"{source}: image {_image_of(box, offsets, image_ids)!r} has a NaN, infinite "
                         f"or out-of-range [0, 1] class score")


def _check_boxes(boxes: np.ndarray, offsets, image_ids, source: str) -> None:
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        box = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}: image {_image_of(box, offsets, image_ids)!r} has a non-finite box")
