"""One streaming pass over the detections: per-image scalars in memory, per-box rows on disk.

φ(x) = w_{c(x)} · E(x) needs only E(x), c(x), x ∈ P and the class counts n_c once the pass is
over (SPEC.md §2), so the (m, C) score rows are dropped batch by batch. What the outputs need of
the boxes later (xyxy, conf_b, argmax class: the pseudo labels of P and the pre-annotations of
the B selected) is spooled to flat files as it is found, 22 bytes a box, and read back by row.

Memory: per image its image_id (its bytes + 4), E (8), c (4), P (1), its box count (4) and its
image_id rank (4), each in one array sized from the files' footers (grown by half when a
footer undercounts, never concatenated at the end); plus a constant for the batches in flight.
A box's row in the spool comes from the counts and one int64 start per 1024 images.
The spool is 24 bytes per box on disk (``TMPDIR``). A tail-aware variant's rarity rule
(a strategy record's rarity_rule) spools one more C-row per image (4·C bytes: s_{b*}),
read back in chunks once the class counts are known.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.errors import InputError
from taast_ray.contracts.detections import (BATCH_ROWS, DetectionsSource, check_score_range, exemplar_rows,
                                            flatten_detections, without_failed)
from taast_ray.selection.scoring import EXEMPLAR, VECTOR_RULES, ImageReduction, reduce_images


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
        values = np.ascontiguousarray(values, dtype=dtype)
        if values.size:
            self.files[name].write(memoryview(values.reshape(-1)).cast("B"))

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


class BoxIndex:
    """Where each image's boxes lie in the spool without a pool-sized offsets array: per image
    its box count (int32), per block of BLOCK images the first box row (int64); a row's first
    box is its block's start plus the counts before it in the block."""

    BLOCK = 1024

    def __init__(self, counts: np.ndarray):
        self.counts = np.asarray(counts, dtype=np.int32)
        sums = np.add.reduceat(self.counts, np.arange(0, len(self.counts), self.BLOCK), dtype=np.int64) \
            if len(self.counts) else np.zeros(0, np.int64)
        self.block_start = np.zeros(len(sums) + 1, np.int64)
        np.cumsum(sums, out=self.block_start[1:])

    @property
    def total(self) -> int:
        return int(self.block_start[-1])

    def starts(self, rows) -> np.ndarray:
        """First box row of each of these images (int64)."""
        rows = np.asarray(rows, dtype=np.int64)
        block = rows // self.BLOCK
        blocks, where = np.unique(block, return_inverse=True)
        grid = np.zeros((len(blocks), self.BLOCK), np.int64)  # the counts of the blocks asked for
        for i, b in enumerate(blocks.tolist()):
            part = self.counts[b * self.BLOCK:(b + 1) * self.BLOCK]
            grid[i, 1:len(part)] = part[:-1]
        np.cumsum(grid, axis=1, out=grid)
        return self.block_start[block] + grid[where.reshape(-1), rows % self.BLOCK]

    def offsets(self) -> np.ndarray:
        """Every image's first box row and the total, (n + 1,) int64 (small pools, tests)."""
        out = np.zeros(len(self.counts) + 1, np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out


@dataclass
class PoolScalars:
    """The streaming pass's result: per-image scalars in stream order, and the box spool."""
    image_ids: pa.Array          # string
    entropy: np.ndarray          # float64 E(x)
    candidate_class: np.ndarray  # int32 c(x), −1 for none
    pseudo: np.ndarray           # bool
    pseudo_counts: dict          # {"images"|"boxes": (C,) int64}
    has_size: bool
    has_uri: bool
    converted: int
    spool: _Spool | None = field(default=None, repr=False)
    boxes_index: BoxIndex | None = field(default=None, repr=False)
    _tie_rank: np.ndarray | None = field(default=None, repr=False)
    _seeded: dict = field(default_factory=dict, repr=False)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_boxes(self) -> int:
        return self.boxes_index.total

    @property
    def box_count(self) -> np.ndarray:
        """Boxes per image (int32)."""
        return self.boxes_index.counts

    @property
    def box_offsets(self) -> np.ndarray:
        """(n + 1,) first box row per image and the total: pool-sized, for small pools and tests."""
        return self.boxes_index.offsets()

    @property
    def tie_rank(self) -> np.ndarray:
        """Rank of each image_id in ascending order (the outputs' row order), computed once."""
        if self._tie_rank is None:
            order = pc.sort_indices(self.image_ids).to_numpy()
            self._tie_rank = _rank_of(order)
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
        lo = self.boxes_index.starts(rows)
        hi = lo + self.boxes_index.counts[rows]
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


class GrowableArray:
    """An array appended to block by block: preallocated to the expected length, grown in
    place by half (``ndarray.resize``: realloc, which moves large blocks by remapping pages,
    not copying them) when that falls short, and trimmed once at the end. ``finish`` hands the
    array out; nothing may be appended afterwards (no view is ever live while it can move)."""

    GROWTH = 1.5

    def __init__(self, dtype, capacity: int = 0):
        self._data = np.empty(max(int(capacity), 0), dtype)
        self.size = 0
        self._done = False

    @property
    def capacity(self) -> int:
        return len(self._data)

    def append(self, values) -> None:
        if self._done:
            raise RuntimeError("GrowableArray: append after finish")
        values = np.asarray(values)
        need = self.size + len(values)
        if need > len(self._data):
            self._data.resize(max(need, math.ceil(len(self._data) * self.GROWTH)), refcheck=False)
        self._data[self.size:need] = values
        self.size = need

    def finish(self) -> np.ndarray:
        """The appended values, as one array of exactly their length."""
        if not self._done:
            self._done = True
            if self.size != len(self._data):
                self._data.resize(self.size, refcheck=False)
        return self._data


class _StringColumn:
    """Strings appended batch by batch into one byte buffer and one offsets array, handed out
    as a single Arrow array at the end (string, or large_string past 2 GiB of bytes)."""

    def __init__(self, expected_rows: int):
        self.data = GrowableArray(np.uint8, 16 * expected_rows)
        self.ends = GrowableArray(np.int64, expected_rows)

    def append(self, values: pa.Array) -> None:
        values = pc.cast(values, pa.large_string())
        if isinstance(values, pa.ChunkedArray):
            values = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
        _, offsets, data = values.buffers()
        offsets = np.frombuffer(offsets, np.int64)[values.offset:values.offset + len(values) + 1]
        lo, hi = int(offsets[0]), int(offsets[-1])
        base = self.data.size
        self.data.append(np.frombuffer(data, np.uint8)[lo:hi] if hi > lo else np.zeros(0, np.uint8))
        self.ends.append(offsets[1:] - (lo - base))

    def finish(self) -> pa.Array:
        data, ends = self.data.finish(), self.ends.finish()
        wide = len(data) >= 2 ** 31 - 1
        offsets = np.zeros(len(ends) + 1, np.int64 if wide else np.int32)
        offsets[1:] = ends
        del ends
        self.ends = None
        return pa.Array.from_buffers(pa.large_string() if wide else pa.string(), len(offsets) - 1,
                                     [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _rank_and_check_unique(ids: pa.Array, source: str, chunk: int = 1 << 20) -> np.ndarray:
    """Rank of each image_id in ascending order (the §2 tie-break); a duplicate is an InputError
    naming the duplicated id seen first in the input (as a hash count would), found by comparing
    neighbours in the (stable) sorted order a chunk at a time, without a hash table of the pool."""
    order = pc.sort_indices(ids).to_numpy()
    first_dup = None
    for start in range(0, max(len(order) - 1, 0), chunk):
        at = order[start:start + chunk + 1]
        sorted_ids = ids.take(pa.array(at))
        same = pc.equal(sorted_ids.slice(1), sorted_ids.slice(0, len(at) - 1))
        if pc.any(same).as_py():
            # the first of each run of equal ids is its first occurrence (a stable sort)
            hit = int(at[:-1][same.to_numpy(zero_copy_only=False)].min())
            first_dup = hit if first_dup is None else min(first_dup, hit)
    if first_dup is not None:
        raise InputError(f"{source}: duplicate image_id {ids[first_dup].as_py()!r}")
    return _rank_of(order, chunk)


def _rank_of(order: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """The inverse permutation of a sort order: int32 while the pool allows (the ranks order
    ties; their width changes no order), filled a chunk at a time (no pool-sized arange)."""
    dtype = np.int32 if len(order) < 2 ** 31 else np.int64
    rank = np.empty(len(order), dtype=dtype)
    for start in range(0, len(order), chunk):
        rank[order[start:start + chunk]] = np.arange(start, min(start + chunk, len(order)), dtype=dtype)
    return rank


class _Accumulator:
    def __init__(self, num_classes: int, spool: _Spool, expected_rows: int = 0):
        self.spool = spool
        self.ids = _StringColumn(expected_rows)
        self.columns = {"entropy": GrowableArray(np.float64, expected_rows),
                        "cls": GrowableArray(np.int32, expected_rows),
                        "pseudo": GrowableArray(np.bool_, expected_rows),
                        "count": GrowableArray(np.int32, expected_rows)}
        self.pseudo_counts = {m: np.zeros(num_classes, np.int64) for m in ("images", "boxes")}
        self.size_columns: set[bool] = set()
        self.uri_columns: set[bool] = set()
        self.converted = 0

    def add(self, table: pa.Table, det, reduced: ImageReduction) -> None:
        self.ids.append(table.column("image_id"))
        for key, values in (("entropy", reduced.entropy), ("cls", reduced.candidate_class),
                            ("pseudo", reduced.pseudo)):
            self.columns[key].append(values)
        self.columns["count"].append(reduced.box_count)
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
        if self.columns["pseudo"].size == 0:
            raise InputError(f"{source}: the pool is empty (no rows)")
        self.spool.close()
        ids = self.ids.finish()
        rank = _rank_and_check_unique(ids, source)
        cat = {k: v.finish() for k, v in self.columns.items()}
        return PoolScalars(ids, cat["entropy"], cat["cls"], cat["pseudo"],
                           self.pseudo_counts, self.size_columns == {True}, self.uri_columns == {True},
                           self.converted, self.spool, BoxIndex(cat["count"]), rank)


def stream_pool(path, num_classes: int, tau: float, *, failed: list | None = None,
                batch_rows: int = BATCH_ROWS, spool_dir: str | Path | None = None,
                rule: str = "class") -> PoolScalars:
    """Read, validate and reduce a detections input batch by batch (eqs. 1–4 and P's counts).

    ``failed``: a list that receives the rows with an ``error`` (the live pass's undecodable
    records) as tables; those rows are left out of the pool. ``rule``: the strategy's rarity
    rule (the strategy record's rarity_rule); a variant's spools its per-image score row.
    """
    source = DetectionsSource(path)
    spool = _Spool(Path(tempfile.mkdtemp(prefix="taast-spool-", dir=spool_dir)),
                   num_classes if rule in VECTOR_RULES else 0)
    acc = _Accumulator(num_classes, spool, source.num_rows())
    try:
        for name, at, table in source.batches(batch_rows=batch_rows):
            table = without_failed(table, failed)
            if not table.num_rows:
                continue
            det = flatten_detections(table, num_classes, source=name, check_unique=False, first_record=at,
                                     check_scores=False, ids_as_objects=False)
            exemplar = exemplar_rows(table, num_classes, name, at) if rule == EXEMPLAR else None
            reduced = reduce_images(det.scores, det.offsets, tau, rule, row_min=False, exemplar=exemplar)
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
