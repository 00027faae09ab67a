"""Ranking helpers: deterministic orders and the candidate filter of eq. 8."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def id_rank(image_ids) -> np.ndarray:
    """Rank of each image_id in ascending string order: the tie-break everywhere in §2."""
    order = pc.sort_indices(pa.array(np.asarray(image_ids, dtype=object), type=pa.string()))
    rank = np.empty(len(image_ids), dtype=np.int64)
    rank[order.to_numpy()] = np.arange(len(image_ids), dtype=np.int64)
    return rank


def rank_by_value(values: np.ndarray, tie_rank: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Rows ordered by value descending, ties by image_id ascending (``rows``: restrict to these)."""
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

    A bounded top-k: np.partition finds the k-th largest value in O(N), the rows above it and the
    lowest-ranked ties at it make the set, and only those k rows are sorted. The same rows in
    the same order as sorting every eligible image by (φ descending, image_id ascending).
    """
    rows = np.flatnonzero(eligible)
    k = candidate_count(len(rows), fraction, budget)
    if 0 < k < len(rows):
        v = values[rows]
        kth = np.partition(v, len(v) - k)[len(v) - k]
        above = v > kth
        tied = np.flatnonzero(v == kth)
        tied = tied[np.argsort(tie_rank[rows[tied]], kind="stable")[:k - int(above.sum())]]
        keep = above
        keep[tied] = True
        rows = rows[keep]
    return rank_by_value(values, tie_rank, rows)[:k]
