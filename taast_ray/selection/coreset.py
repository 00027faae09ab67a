"""Core-set baseline: k-center greedy (Sener & Savarese 2018), SPEC.md §2 "Baselines".

Each pick is the pool point farthest from every centre chosen so far (labelled embeddings and
earlier picks). Squared distances order the same as distances, so they are never square-rooted.
"""
from __future__ import annotations

import numpy as np

_CHUNK_ELEMENTS = 1 << 24  # pool rows × labelled rows per distance block: 64 MiB of float32


def _min_sq_dist(pool: np.ndarray, pool_nrm: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """min over centres of ‖p − c‖² for every pool row, in blocks of both (float32 GEMMs)."""
    out = np.full(len(pool), np.inf, np.float64)
    c_nrm = np.einsum("ij,ij->i", centres, centres).astype(np.float64)
    c_step = min(len(centres), 4096)
    p_step = max(1, _CHUNK_ELEMENTS // c_step)
    for cs in range(0, len(centres), c_step):
        cb = np.ascontiguousarray(centres[cs:cs + c_step].T)
        for ps in range(0, len(pool), p_step):
            d2 = (pool[ps:ps + p_step] @ cb) * -2.0 + c_nrm[None, cs:cs + c_step]
            np.minimum(out[ps:ps + p_step], d2.min(axis=1) + pool_nrm[ps:ps + p_step],
                       out=out[ps:ps + p_step])
    return np.maximum(out, 0.0)


def _farthest(min_d2: np.ndarray, tie_rank: np.ndarray) -> int:
    """Index of the largest min distance; equal distances go to the smallest tie_rank."""
    tied = np.flatnonzero(min_d2 == min_d2.max())
    return int(tied[np.argmin(tie_rank[tied])])


def k_center_greedy(pool: np.ndarray, budget: int, *, labelled: np.ndarray | None, seed: int,
                    tie_rank: np.ndarray) -> np.ndarray:
    """`min(budget, len(pool))` distinct pool row indices, in the order k-center greedy picks them.

    With no labelled embeddings the first pick is a seeded uniform draw over the pool taken in
    tie_rank order, so it does not depend on how the rows happen to be ordered.
    """
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    tie_rank = np.asarray(tie_rank)
    n = len(pool)
    if pool.ndim != 2 or tie_rank.shape != (n,):
        raise ValueError("pool must be (n, d) and tie_rank (n,)")
    budget = min(int(budget), n)
    if budget <= 0:
        return np.zeros(0, np.int64)
    nrm = np.einsum("ij,ij->i", pool, pool).astype(np.float64)
    picks = np.empty(budget, np.int64)
    if labelled is not None and len(labelled):
        labelled = np.ascontiguousarray(labelled, dtype=np.float32)
        if labelled.ndim != 2 or labelled.shape[1] != pool.shape[1]:
            raise ValueError(f"labelled embeddings are {labelled.shape}, pool rows are "
                             f"{pool.shape[1]}-d")
        min_d2, start = _min_sq_dist(pool, nrm, labelled), 0
    else:
        by_rank = np.argsort(tie_rank, kind="stable")
        picks[0] = by_rank[np.random.default_rng(seed).integers(n)]
        min_d2, start = np.full(n, np.inf), 1
    for step in range(start, budget):
        if step:
            c = pool[picks[step - 1]]
            np.minimum(min_d2, np.maximum(nrm - 2.0 * (pool @ c) + nrm[picks[step - 1]], 0.0),
                       out=min_d2)
            min_d2[picks[step - 1]] = -1.0  # never again, even when duplicates tie it at 0
        picks[step] = _farthest(min_d2, tie_rank)
    return picks
