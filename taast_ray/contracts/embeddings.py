"""The embeddings contract (SPEC.md §3): ``image_id``, ``embedding`` list<float32> of any dimension.

The file is read batch by batch: only its ``image_id`` column is held; a lookup streams the
``embedding`` column once and copies the rows asked for into place. A result larger than
``MEMMAP_BYTES`` is a memory-mapped temporary file (unlinked at once, so it goes with the array).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from taast_ray.errors import InputError
from taast_ray.contracts.detections import type_name
from taast_ray.io import exists, is_uri, resolve

MEMMAP_BYTES = 1 << 30
BATCH_ROWS = 1 << 14


def _check_schema(schema: pa.Schema, path) -> None:
    missing = [c for c in ("image_id", "embedding") if c not in schema.names]
    if missing:
        raise InputError(f"{path}: needs columns image_id and embedding (missing {', '.join(missing)})")
    ids, emb = schema.field("image_id").type, schema.field("embedding").type
    if not (pa.types.is_string(ids) or pa.types.is_large_string(ids)):
        raise InputError(f"{path}: column 'image_id' must be string, got {type_name(ids)} (every record)")
    listy = pa.types.is_list(emb) or pa.types.is_large_list(emb) or pa.types.is_fixed_size_list(emb)
    if not (listy and pa.types.is_floating(emb.value_type)):
        raise InputError(f"{path}: column 'embedding' must be list<float32>, got {type_name(emb)} (every record)")


def output_matrix(rows: int, dim: int) -> np.ndarray:
    """(rows, dim) float32, in memory or, past MEMMAP_BYTES, on a memory-mapped temporary file."""
    if rows * dim * 4 <= MEMMAP_BYTES:
        return np.empty((rows, dim), np.float32)
    with tempfile.NamedTemporaryFile(prefix="taast-embeddings-", suffix=".f32") as f:
        return np.memmap(f.name, dtype=np.float32, mode="w+", shape=(rows, dim))


class ParquetEmbeddings:
    """Looks rows up by image_id without turning the whole file into one matrix."""

    def __init__(self, path: str | Path):
        self.path = path if is_uri(path) else Path(path)
        if not exists(self.path):
            raise InputError(f"{self.path}: embeddings file not found")
        try:
            fs, inner = resolve(self.path)
            self.dataset = pads.dataset(inner, format="parquet", filesystem=fs)
            _check_schema(self.dataset.schema, self.path)
            self.ids = pc.cast(self.dataset.to_table(columns=["image_id"]).column(0),
                               pa.string()).combine_chunks()
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable embeddings parquet file "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if self.ids.null_count:
            raise InputError(f"{self.path}: record {int(np.flatnonzero(self.ids.is_null())[0])}: null image_id")
        uniq = pc.value_counts(self.ids)
        dup = pc.filter(uniq.field("values"), pc.greater(uniq.field("counts"), 1))
        if len(dup):
            raise InputError(f"{self.path}: duplicate image_id {dup[0].as_py()!r}")

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, image_ids: Sequence[str]) -> np.ndarray:
        """Rows for these ids, in this order; a missing id is an InputError naming it."""
        wanted = pa.array(list(image_ids), type=pa.string())
        index = pc.index_in(wanted, value_set=self.ids)
        if index.null_count:
            missing = wanted[int(np.flatnonzero(index.is_null().to_numpy(zero_copy_only=False))[0])]
            raise InputError(f"{self.path}: no embedding for candidate image_id {missing.as_py()!r}")
        return self._gather(index.to_numpy(zero_copy_only=False).astype(np.int64))

    def get_present(self, image_ids: Sequence[str]) -> np.ndarray:
        """Rows for whichever of these ids the file holds (the core-set's labelled start)."""
        wanted = pa.array(list(image_ids), type=pa.string())
        index = pc.drop_null(pc.index_in(wanted, value_set=self.ids))
        return self._gather(index.to_numpy(zero_copy_only=False).astype(np.int64))

    def _gather(self, file_rows: np.ndarray) -> np.ndarray:
        """Rows ``file_rows`` of the file, in that order, streaming the embedding column once."""
        if len(file_rows) == 0:
            return np.zeros((0, 0), np.float32)
        order = np.argsort(file_rows, kind="stable")
        sorted_rows = file_rows[order]
        out, at, dim = None, 0, None
        try:
            batches = self.dataset.to_batches(columns=["embedding"], batch_size=BATCH_ROWS,
                                              batch_readahead=2, fragment_readahead=1)
            for batch in batches:
                lo, hi = np.searchsorted(sorted_rows, [at, at + batch.num_rows])
                if hi > lo:
                    local = sorted_rows[lo:hi] - at
                    rows = batch.column(0).take(pa.array(local))
                    matrix = self._matrix(rows, self.ids.take(pa.array(sorted_rows[lo:hi])), dim)
                    if out is None:
                        dim = matrix.shape[1]
                        out = output_matrix(len(file_rows), dim)
                    out[order[lo:hi]] = matrix
                at += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable embeddings parquet file ({exc})") from None
        return out

    def _matrix(self, rows: pa.Array, ids: pa.Array, dim: int | None) -> np.ndarray:
        lengths = pc.list_value_length(rows).to_numpy(zero_copy_only=False)
        expected = dim if dim is not None else lengths[0]
        if expected == 0 and not rows.null_count:  # FAISS and k-means have nothing to divide by
            raise InputError(f"{self.path}: embedding of image_id {ids[0].as_py()!r} is empty "
                             f"(0 dimensions)")
        if rows.null_count or (lengths != expected).any():
            bad = int(np.flatnonzero(rows.is_null().to_numpy(zero_copy_only=False)
                                     | (lengths != expected))[0])
            raise InputError(f"{self.path}: embedding of image_id {ids[bad].as_py()!r} is null or has "
                             f"a different dimension than {expected}")
        values = rows.flatten()
        if values.null_count:
            bad = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]) // max(expected, 1)
            raise InputError(f"{self.path}: embedding of image_id {ids[bad].as_py()!r} has a null value")
        matrix = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(rows), -1)
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():
            raise InputError(f"{self.path}: embedding of image_id "
                             f"{ids[int(np.flatnonzero(~finite)[0])].as_py()!r} has NaN or infinite values")
        return matrix
