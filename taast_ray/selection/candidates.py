"""Ranking helpers: deterministic orders and the candidate filter of eq. 8."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _string_array(image_ids) -> pa.Array | pa.ChunkedArray:
    """image_ids as an Arrow string array (Arrow input as it is)."""
    if isinstance(image_ids, (pa.Array, pa.ChunkedArray)):
        return image_ids
    return pa.array(np.asarray(image_ids, dtype=object), type=pa.string())


def id_rank(image_ids) -> np.ndarray:
    """Rank of each image_id in ascending string order: the tie-break everywhere in §2."""
    order = pc.sort_indices(_string_array(image_ids))
    rank = np.empty(len(image_ids), dtype=np.int64)
    rank[order.to_numpy()] = np.arange(len(image_ids), dtype=np.int64)
    return rank


HASH_CHUNK = 1 << 20  # image_ids hashed at a time
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (FNV alone clusters)."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def seeded_id_hash(image_ids, seed: int) -> np.ndarray:
    """(n,) uint64: FNV-1a over each image_id's UTF-8 bytes from a seed-dependent basis, mixed.

    Vectorised over the Arrow string buffer: one numpy step per byte position j, over the ids
    longer than j (sorted by length, so that is a prefix): O(total bytes), ~0.1 s per million ids.
    """
    ids = pc.cast(_string_array(image_ids), pa.large_string())
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    n = len(ids)
    offsets = np.frombuffer(ids.buffers()[1], np.int64)[ids.offset:ids.offset + n + 1]
    data = np.frombuffer(ids.buffers()[2], np.uint8) if ids.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = offsets[1:] - offsets[:-1]
    by_length = np.argsort(-lengths, kind="stable")
    starts = offsets[:-1][by_length]
    sorted_lengths = lengths[by_length]
    basis = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64) ^ _FNV_OFFSET)[0]
    h = np.full(n, basis, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(int(sorted_lengths[0]) if n else 0):
            active = int(np.searchsorted(-sorted_lengths, -j, side="left"))  # ids longer than j
            h[:active] = (h[:active] ^ data[starts[:active] + j]) * _FNV_PRIME
    out = np.empty(n, np.uint64)
    out[by_length] = _mix64(h)
    return out


def seeded_tie_rank(image_ids, seed: int, id_order: np.ndarray | None = None) -> np.ndarray:
    """Rank of each image by a seeded hash of its image_id: the tie-break of every ranking.

    Deterministic per seed and independent of row order, but not the file-name order, which
    would turn a degenerate ranking (every φ equal) into "the first B files" (issue 16). Two ids
    with the same hash (about one pair in 2^64 / n²) go by ``id_order`` (image_id ascending).
    """
    ids = _string_array(image_ids)
    key = np.empty(len(ids), np.uint64)
    for start in range(0, len(ids), HASH_CHUNK):  # the hash's temporaries stay chunk-sized
        key[start:start + HASH_CHUNK] = seeded_id_hash(ids.slice(start, HASH_CHUNK), seed)
    second = id_rank(image_ids) if id_order is None else id_order
    order = np.lexsort((second, key))
    del key
    dtype = np.int32 if len(order) < 2 ** 31 else np.int64
    rank = np.empty(len(order), dtype=dtype)
    rank[order] = np.arange(len(order), dtype=dtype)
    return rank


def rank_by_value(values: np.ndarray, tie_rank: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Rows ordered by value descending, ties by ``tie_rank`` ascending (``rows``: restrict to these)."""
    if rows is None:
        rows = np.arange(len(values))
    order = np.lexsort((tie_rank[rows], -values[rows]))
    return rows[order]


def candidate_count(num_eligible: int, fraction: float, budget: int) -> int:
    """max(⌈q·N⌉, B), all eligible images when fewer (eq. 8)."""
    top_fraction = math.ceil(fraction * num_eligible - 1e-9)  # 0.2 * 5 is 1.0000000000000002
    return min(max(top_fraction, budget), num_eligible)


def top_candidates(values: np.ndarray, eligible: np.ndarray, tie_rank: np.ndarray,
                   fraction: float, budget: int) -> np.ndarray:
    """Rows of the candidates S_φ in rank order (eq. 8).

    A bounded top-k: a partition finds the k-th largest value in O(N), the rows above it and the
    lowest-ranked ties at it make the set, and only those k rows are sorted. The same rows in
    the same order as sorting every eligible image by (φ descending, image_id ascending).
    """
    eligible = np.asarray(eligible, dtype=bool)
    num_eligible = int(np.count_nonzero(eligible))
    k = candidate_count(num_eligible, fraction, budget)
    if 0 < k < num_eligible:
        # the k-th largest eligible value, the others pushed below every eligible one: one
        # pool-sized float64 temporary, partitioned in place
        v = np.where(eligible, values, -np.inf)
        v.partition(len(v) - k)
        kth = v[len(v) - k]
        del v
        keep = eligible & (values > kth)
        tied = np.flatnonzero(eligible & (values == kth))
        tied = tied[np.argsort(tie_rank[tied], kind="stable")[:k - int(np.count_nonzero(keep))]]
        keep[tied] = True
        rows = np.flatnonzero(keep)
    else:
        rows = np.flatnonzero(eligible)
    return rank_by_value(values, tie_rank, rows)[:k]
