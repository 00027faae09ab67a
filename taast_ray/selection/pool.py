"""One streaming pass over the detections: per-image scalars in memory, per-box rows on disk.

φ(x) = w_{c(x)} · E(x) needs only E(x), c(x), x ∈ P and the class counts n_c once the pass is
over (SPEC.md §2), so the (m, C) score rows are dropped batch by batch. What the outputs need of
the boxes later (xyxy, conf_b, argmax class: the pseudo labels of P and the pre-annotations of
the B selected) is spooled to flat files as it is found, 22 bytes a box, and read back by row.

Memory: ~35 bytes per image (image_id, E, c, P, box count) plus a constant for the batch in
flight; the spool is 22 bytes per box on disk (``TMPDIR``). A tail-aware variant's rarity rule
(scoring.RARITY_RULES) spools one more C-row per image (4·C bytes: s_{b*} or max_b s_{k,b}),
read back in chunks once the class counts are known.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.errors import InputError
from taast_ray.selection.detections import (BATCH_ROWS, DetectionsSource, check_score_range,
                                            flatten_detections, without_failed)
from taast_ray.selection.scoring import RULE_VECTOR, ImageReduction, reduce_images


@dataclass
class BoxRows:
    """The boxes of some images as the outputs need them: xyxy, conf_b and argmax_k s_{k,b}."""
    image_ids: np.ndarray      # (n,) str
    offsets: np.ndarray        # (n + 1,) int64
    boxes: np.ndarray          # (m, 4) float32
    box_conf: np.ndarray       # (m,) float32
    box_class: np.ndarray      # (m,) int
    width: np.ndarray | None = None
    height: np.ndarray | None = None
    uri: np.ndarray | None = None


class _Spool:
    """Flat files appended to during the pass, memory-mapped for reading afterwards."""

    COLUMNS = {"boxes": (np.float32, 4), "conf": (np.float32, 1), "cls": (np.int32, 1),
               "width": (np.float64, 1), "height": (np.float64, 1)}

    def __init__(self, folder: Path, vector_width: int = 0):
        self.folder = folder
        self.columns = dict(self.COLUMNS)
        if vector_width:
            self.columns["vector"] = (np.float32, vector_width)
        self.files = {name: open(folder / f"{name}.bin", "wb") for name in self.columns}
        self.uri_writer: pq.ParquetWriter | None = None
        self.uri_groups: list[int] = []

    def add(self, name: str, values: np.ndarray) -> None:
        dtype, _ = self.columns[name]
        self.files[name].write(np.ascontiguousarray(values, dtype=dtype).tobytes())

    def add_uri(self, uri: pa.Array) -> None:
        table = pa.table({"uri": pc.cast(uri, pa.string())})
        if self.uri_writer is None:
            self.uri_writer = pq.ParquetWriter(self.folder / "uri.parquet", table.schema)
        self.uri_writer.write_table(table, row_group_size=max(len(table), 1))
        self.uri_groups.append(len(table))

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        if self.uri_writer is not None:
            self.uri_writer.close()

    def array(self, name: str) -> np.ndarray:
        dtype, width = self.columns[name]
        path = self.folder / f"{name}.bin"
        if path.stat().st_size == 0:
            return np.zeros((0, width) if width > 1 or name == "vector" else 0, dtype)
        a = np.memmap(path, dtype=dtype, mode="r")
        return a.reshape(-1, width) if width > 1 or name == "vector" else a

    def uri(self, rows: np.ndarray) -> np.ndarray:
        """URIs of these images (stream rows), reading only the row groups that hold them."""
        ends = np.cumsum(self.uri_groups)
        group = np.searchsorted(ends, rows, side="right")
        out = np.empty(len(rows), object)
        reader = pq.ParquetFile(self.folder / "uri.parquet")
        for g in np.unique(group).tolist():
            at = np.flatnonzero(group == g)
            local = rows[at] - (ends[g] - self.uri_groups[g])
            out[at] = reader.read_row_group(g).column(0).take(pa.array(local)).to_pylist()
        return out


@dataclass
class PoolScalars:
    """The streaming pass's result: per-image scalars in stream order, and the box spool."""
    image_ids: pa.Array          # string
    entropy: np.ndarray          # float64 E(x)
    candidate_class: np.ndarray  # int32 c(x), −1 for none
    pseudo: np.ndarray           # bool
    box_count: np.ndarray        # int32
    pseudo_counts: dict          # {"images"|"boxes": (C,) int64}
    has_size: bool
    has_uri: bool
    converted: int
    spool: _Spool | None = field(default=None, repr=False)
    box_offsets: np.ndarray | None = field(default=None, repr=False)
    _tie_rank: np.ndarray | None = field(default=None, repr=False)
    _seeded: dict = field(default_factory=dict, repr=False)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_boxes(self) -> int:
        return int(self.box_offsets[-1])

    @property
    def tie_rank(self) -> np.ndarray:
        """Rank of each image_id in ascending order (the outputs' row order), computed once."""
        if self._tie_rank is None:
            order = pc.sort_indices(self.image_ids).to_numpy()
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order), dtype=np.int64)
            self._tie_rank = rank
        return self._tie_rank

    def seeded_tie_rank(self, seed: int) -> np.ndarray:
        """Rank by a seeded hash of image_id: how the strategies break ties (issue 16)."""
        if seed not in self._seeded:
            from taast_ray.selection.candidates import seeded_tie_rank

            self._seeded = {seed: seeded_tie_rank(self.image_ids, seed, self.tie_rank)}
        return self._seeded[seed]

    def ids(self, rows) -> np.ndarray:
        return np.asarray(self.image_ids.take(pa.array(np.asarray(rows, np.int64))).to_pylist(), object)

    def box_rows(self, rows) -> BoxRows:
        """These images' boxes from the spool, in the order given."""
        rows = np.asarray(rows, dtype=np.int64)
        lo, hi = self.box_offsets[rows], self.box_offsets[rows + 1]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(hi - lo, out=offsets[1:])
        box = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(rows) else np.zeros(0, np.int64)
        boxes, conf, cls = (self.spool.array(n) for n in ("boxes", "conf", "cls"))
        size = (self.spool.array("width")[rows], self.spool.array("height")[rows]) if self.has_size \
            else (None, None)
        return BoxRows(self.ids(rows), offsets, np.asarray(boxes[box]), np.asarray(conf[box]),
                       np.asarray(cls[box]).astype(np.int64), *size,
                       self.spool.uri(rows) if self.has_uri else None)

    @property
    def image_vectors(self) -> np.ndarray | None:
        """The rarity rule's (n, C) rows (memory-mapped), or None when the pass kept none."""
        if self.spool is None or "vector" not in self.spool.columns:
            return None
        return self.spool.array("vector")

    def uris(self, rows) -> np.ndarray | None:
        return self.spool.uri(np.asarray(rows, np.int64)) if self.has_uri else None

    def close(self) -> None:
        """Remove the spool (the pool object is unusable for box rows afterwards)."""
        if self.spool is not None:
            self.spool.close()
            shutil.rmtree(self.spool.folder, ignore_errors=True)
            self.spool = None


class _Accumulator:
    def __init__(self, num_classes: int, spool: _Spool):
        self.spool = spool
        self.parts: dict[str, list] = {k: [] for k in ("ids", "entropy", "cls", "pseudo", "count")}
        self.pseudo_counts = {m: np.zeros(num_classes, np.int64) for m in ("images", "boxes")}
        self.size_columns: set[bool] = set()
        self.uri_columns: set[bool] = set()
        self.converted = 0

    def add(self, table: pa.Table, det, reduced: ImageReduction) -> None:
        self.parts["ids"].append(pc.cast(table.column("image_id"), pa.string()).combine_chunks())
        for key, values in (("entropy", reduced.entropy), ("cls", reduced.candidate_class),
                            ("pseudo", reduced.pseudo), ("count", reduced.box_count)):
            self.parts[key].append(values)
        for mode, counts in reduced.pseudo_counts.items():
            self.pseudo_counts[mode] += counts
        self.spool.add("boxes", det.boxes)
        self.spool.add("conf", reduced.confidence)
        self.spool.add("cls", reduced.box_class)
        if reduced.image_vector is not None:
            self.spool.add("vector", reduced.image_vector)
        self.size_columns.add(det.width is not None and det.height is not None)
        if det.width is not None and det.height is not None:
            self.spool.add("width", det.width)
            self.spool.add("height", det.height)
        self.uri_columns.add("uri" in table.column_names)
        if "uri" in table.column_names:
            self.spool.add_uri(table.column("uri"))
        if "converted" in table.column_names:
            self.converted += int(pc.sum(pc.is_valid(table.column("converted"))).as_py() or 0)

    def finish(self, source: str) -> PoolScalars:
        if not self.parts["ids"]:
            raise InputError(f"{source}: the pool is empty (no rows)")
        self.spool.close()
        ids = pa.concat_arrays(self.parts["ids"])
        counts = pc.value_counts(ids)
        duplicated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        if len(duplicated):
            raise InputError(f"{source}: duplicate image_id {duplicated[0].as_py()!r}")
        del counts, duplicated
        cat = {k: np.concatenate(v) for k, v in self.parts.items() if k != "ids"}
        offsets = np.zeros(len(ids) + 1, np.int64)
        np.cumsum(cat["count"], out=offsets[1:])
        return PoolScalars(ids, cat["entropy"], cat["cls"], cat["pseudo"], cat["count"],
                           self.pseudo_counts, self.size_columns == {True}, self.uri_columns == {True},
                           self.converted, self.spool, offsets)


def stream_pool(path, num_classes: int, tau: float, *, failed: list | None = None,
                batch_rows: int = BATCH_ROWS, spool_dir: str | Path | None = None,
                rule: str = "class") -> PoolScalars:
    """Read, validate and reduce a detections input batch by batch (eqs. 1–4 and P's counts).

    ``failed``: a list that receives the rows with an ``error`` (the live pass's undecodable
    records) as tables; those rows are left out of the pool. ``rule``: the strategy's rarity
    rule (scoring.rarity_rule); a variant's spools its per-image score row.
    """
    source = DetectionsSource(path)
    spool = _Spool(Path(tempfile.mkdtemp(prefix="taast-spool-", dir=spool_dir)),
                   num_classes if rule in RULE_VECTOR else 0)
    acc = _Accumulator(num_classes, spool)
    try:
        for name, at, table in source.batches(batch_rows=batch_rows):
            table = without_failed(table, failed)
            if not table.num_rows:
                continue
            det = flatten_detections(table, num_classes, source=name, check_unique=False, first_record=at,
                                     check_scores=False)
            reduced = reduce_images(det.scores, det.offsets, tau, rule)
            check_score_range(reduced.box_min, reduced.confidence, det.where)
            acc.add(table, det, reduced)
            del det
        pool = acc.finish(str(source.path))
        pa.default_memory_pool().release_unused()  # the batches' buffers, cached by the allocator
        return pool
    except BaseException:
        spool.close()
        shutil.rmtree(spool.folder, ignore_errors=True)
        raise
