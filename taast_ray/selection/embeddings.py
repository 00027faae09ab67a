"""The embeddings contract (SPEC.md §3): ``image_id``, ``embedding`` list<float32> of any dimension."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.errors import InputError
from taast_ray.io import exists, filesystem, is_uri


class ParquetEmbeddings:
    """Looks rows up by image_id without turning the whole file into one matrix."""

    def __init__(self, path: str | Path):
        self.path = path if is_uri(path) else Path(path)
        if not exists(self.path):
            raise InputError(f"{self.path}: embeddings file not found")
        try:
            fs, inner = filesystem(self.path)
            table = pq.read_table(inner, columns=["image_id", "embedding"], filesystem=fs)
        except (pa.ArrowInvalid, KeyError, OSError) as exc:
            raise InputError(f"{self.path}: needs columns image_id and embedding ({exc})") from None
        self.ids = pc.cast(table.column("image_id"), pa.string()).combine_chunks()
        self.column = table.column("embedding").combine_chunks()
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
        return self._matrix(self.column.take(index), wanted)

    def get_present(self, image_ids: Sequence[str]) -> np.ndarray:
        """Rows for whichever of these ids the file holds (the core-set's labelled start)."""
        wanted = pa.array(list(image_ids), type=pa.string())
        index = pc.drop_null(pc.index_in(wanted, value_set=self.ids))
        return self._matrix(self.column.take(index), pc.take(self.ids, index))

    def _matrix(self, rows: pa.Array, ids: pa.Array) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, 0), np.float32)
        lengths = pc.list_value_length(rows).to_numpy(zero_copy_only=False)
        if rows.null_count or (lengths != lengths[0]).any():
            bad = int(np.flatnonzero(rows.is_null().to_numpy(zero_copy_only=False)
                                     | (lengths != lengths[0]))[0])
            raise InputError(f"{self.path}: embedding of image_id {ids[bad].as_py()!r} is null or has "
                             f"a different dimension than {lengths[0]}")
        matrix = rows.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(rows), -1)
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():
            raise InputError(f"{self.path}: embedding of image_id "
                             f"{ids[int(np.flatnonzero(~finite)[0])].as_py()!r} has NaN or infinite values")
        return matrix


def embeddings_table(image_ids: Sequence[str], matrix: np.ndarray) -> pa.Table:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    values = pa.array(matrix.reshape(-1))
    embedding = pa.FixedSizeListArray.from_arrays(values, matrix.shape[1]) if matrix.size else \
        pa.array([[] for _ in image_ids], type=pa.list_(pa.float32()))
    return pa.table({"image_id": pa.array(list(image_ids), pa.string()), "embedding": embedding})
