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
