"""The pure selection functions of SPEC.md §2, ``f(ctx, value) -> Picks``: TAAST's steps, its
ablations and the baselines. Which strategy runs which function on which ranking value is the
strategy registry's (``registry.py``), one record per strategy.

Input rows can arrive in any order: every ordering here goes through (value, tie rank) or a rank
alone, so permuting the detections table never changes the selection. The tie rank is a seeded
hash of image_id (``candidates.seeded_tie_rank``), not the file-name order: with every φ equal
(a detector that finds nothing) the pick is then seeded, not "the first B files" (issue 16).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from taast_ray.selection.candidates import rank_by_value, top_candidates
from taast_ray.selection.coreset import k_center_greedy
from taast_ray.selection.kmeans import pick_nearest_to_means, run_kmeans
from taast_ray.selection.scoring import ImageScores

log = logging.getLogger(__name__)

# image_ids -> (len(ids), d) float32 rows, in the order asked; raises InputError when one is missing.
EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass
class SelectionContext:
    image_ids: np.ndarray          # (n,) str, table order
    tie_rank: np.ndarray           # (n,) the tie-break of every ranking (a seeded id hash's rank)
    scored: ImageScores
    budget: int
    seed: int
    candidate_fraction: float = 0.2
    kmeans_backend: str = "auto"
    kmeans_iters: int = 20
    kmeans_max_points_per_centroid: int = 256
    class_cap: int = 0             # taast-balanced; 0: ⌈B / classes c(x) among the candidates⌉
    embed: EmbedFn | None = None
    labelled_embeddings: Callable[[], np.ndarray | None] | None = None
    id_order: np.ndarray | None = None  # (n,) rank of image_id ascending; None: tie_rank

    @property
    def canonical_rank(self) -> np.ndarray:
        """The order seeded draws are taken in (random, the fill): image_id ascending."""
        return self.tie_rank if self.id_order is None else self.id_order


@dataclass
class Picks:
    rows: np.ndarray                       # selected table rows, in rank order
    score: np.ndarray                      # (n,) the strategy's ranking value, NaN = null
    candidate: np.ndarray                  # (n,) bool
    cluster: np.ndarray                    # (n,) int32, −1 = null
    fill: np.ndarray                       # (len(rows),) bool: filled at random (§2 fill rule)
    info: dict = field(default_factory=dict)


def normalise_rows(x: np.ndarray, in_place: bool = False) -> np.ndarray:
    """z = f / ‖f‖₂ (eq. 9); an all-zero row stays zero rather than becoming NaN.

    ``in_place``: divide x itself, block by block (the same bits; no second N × d copy, and a
    memory-mapped x stays mapped)."""
    x = np.asarray(x, dtype=np.float32)
    if not (in_place and x.flags.writeable):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1.0)
    for start in range(0, len(x), 1 << 15):
        part = x[start:start + (1 << 15)]
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        part /= np.where(norms > 0, norms, 1.0)
    return x


def _empty_picks(ctx: SelectionContext, score: np.ndarray) -> Picks:
    n = len(ctx.image_ids)
    return Picks(np.zeros(0, np.int64), score, np.zeros(n, bool), np.full(n, -1, np.int32),
                 np.zeros(0, bool))


def _with_fill(ctx: SelectionContext, picks: Picks, eligible: np.ndarray) -> Picks:
    """Top up to B at random (seeded, in image_id order) when a strategy found fewer than B.

    §2's case is "fewer than B eligible": then only the rest of the pool (P) is left. A cluster
    left empty by degenerate embeddings (duplicates) is topped up from unpicked candidates first.
    """
    shortfall = ctx.budget - len(picks.rows)
    taken = np.zeros(len(ctx.image_ids), bool)
    taken[picks.rows] = True
    for pool_mask in (picks.candidate, eligible, np.ones_like(eligible)):
        if shortfall <= 0:
            break
        rest = np.flatnonzero(pool_mask & ~taken)
        rest = rest[np.argsort(ctx.canonical_rank[rest])]
        extra = np.random.default_rng(ctx.seed).permutation(rest)[:shortfall]
        picks.rows = np.concatenate([picks.rows, extra])
        picks.fill = np.concatenate([picks.fill, np.ones(len(extra), bool)])
        taken[extra] = True
        shortfall -= len(extra)
    return picks


def _top_by(ctx: SelectionContext, value: np.ndarray, eligible: np.ndarray) -> Picks:
    picks = _empty_picks(ctx, value)
    picks.rows = rank_by_value(value, ctx.tie_rank, np.flatnonzero(eligible))[:ctx.budget]
    picks.candidate[picks.rows] = True
    picks.fill = np.zeros(len(picks.rows), bool)
    return _with_fill(ctx, picks, eligible)


def _embed_rows(ctx: SelectionContext, rows: np.ndarray) -> np.ndarray:
    if ctx.embed is None:
        raise ValueError("this strategy needs embeddings")
    return normalise_rows(ctx.embed(list(ctx.image_ids[rows])), in_place=True)  # a fresh array


def diverse(ctx: SelectionContext, value: np.ndarray, finish=None) -> Picks:
    """TAAST's steps on ``value`` (eqs. 8–11): top-q candidates by value, k-means with k = B on their z, member nearest each mean.

    ``finish(ctx, value, candidates, chosen) -> (rows, info)`` may revise the chosen rows
    (taast-balanced's class cap) before the fill rule."""
    eligible = ~ctx.scored.pseudo
    picks = _empty_picks(ctx, value)
    candidates = top_candidates(value, eligible, ctx.tie_rank, ctx.candidate_fraction, ctx.budget)
    picks.candidate[candidates] = True
    if len(candidates) <= ctx.budget:  # nothing to choose between: all of them, then the fill
        picks.rows, picks.fill = candidates, np.zeros(len(candidates), bool)
        picks.cluster[candidates] = np.arange(len(candidates))
        return _with_fill(ctx, picks, eligible)
    z = _embed_rows(ctx, candidates)
    result = run_kmeans(z, ctx.budget, seed=ctx.seed, iters=ctx.kmeans_iters,
                        backend=ctx.kmeans_backend,
                        max_points_per_centroid=ctx.kmeans_max_points_per_centroid)
    log.info("k-means: backend=%s k=%d n=%d inertia=%.4f", result.backend, ctx.budget,
             len(candidates), result.inertia)
    picks.cluster[candidates] = result.assignment
    chosen = candidates[pick_nearest_to_means(z, result.assignment, ctx.budget,
                                              ctx.tie_rank[candidates])]
    empty_clusters = int(ctx.budget - len(chosen))
    if finish is not None:
        chosen, info = finish(ctx, value, candidates, chosen)
        picks.info.update(info)
    picks.rows = rank_by_value(value, ctx.tie_rank, chosen)
    picks.fill = np.zeros(len(picks.rows), bool)
    picks.info.update(kmeans_backend=result.backend, kmeans_inertia=float(result.inertia),
                      kmeans_iterations=int(result.iterations),
                      empty_clusters=empty_clusters)
    return _with_fill(ctx, picks, eligible)


def occurrence_index(labels: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions hold the same label (0 for the first)."""
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(labels) else np.zeros(0, np.int64)
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(labels)]))
    index = np.empty(len(labels), np.int64)
    index[order] = np.arange(len(labels)) - group_start
    return index


def class_cap(budget: int, classes: np.ndarray, setting: int = 0) -> int:
    """The most picks one predicted class may take: ``setting``, or ⌈B / K⌉ with K the number of
    distinct classes c(x) among ``classes`` (at least 1)."""
    if setting > 0:
        return int(setting)
    present = len(np.unique(classes[classes >= 0]))
    return -(-budget // max(present, 1))


def capped_take(priority: np.ndarray, classes: np.ndarray, cap: int, budget: int) -> tuple[np.ndarray, int]:
    """The first ``budget`` rows of ``priority`` whose class has not yet filled ``cap`` slots;
    when those run out, the next best over-cap rows in priority order. Rows without a class
    (c(x) = −1, no boxes) are never capped. Returns (rows, how many over-cap rows were taken)."""
    cls = classes[priority]
    within = (cls < 0) | (occurrence_index(cls) < cap)
    rows = np.concatenate([priority[within], priority[~within]])[:budget]
    return rows, int(max(0, len(rows) - int(within.sum())))


def _balance(ctx: SelectionContext, value: np.ndarray, candidates: np.ndarray, chosen: np.ndarray):
    """taast-balanced: the cluster picks by φ, then the other candidates by φ, under the cap."""
    classes = np.asarray(ctx.scored.candidate_class)
    cap = class_cap(ctx.budget, classes[candidates], ctx.class_cap)
    rest = np.setdiff1d(candidates, chosen)
    priority = np.concatenate([rank_by_value(value, ctx.tie_rank, chosen),
                               rank_by_value(value, ctx.tie_rank, rest)])
    rows, relaxed = capped_take(priority, classes, cap, ctx.budget)
    kept = int(np.isin(chosen, rows).sum())
    return rows, {"class_cap": cap, "cap_replaced": int(len(chosen) - kept), "cap_relaxed": relaxed}


def diverse_balanced(ctx: SelectionContext, value: np.ndarray) -> Picks:
    """TAAST's steps, then at most a cap of the B picks per predicted class c(x)."""
    return diverse(ctx, value, finish=_balance)


def top_by_value(ctx: SelectionContext, value: np.ndarray) -> Picks:
    """The top B eligible images by ``value`` (entropy: E(x); taast-no-diversity: φ)."""
    return _top_by(ctx, value, ~ctx.scored.pseudo)


def select_random(ctx: SelectionContext, value=None) -> Picks:
    """Uniform without replacement over U: a seeded key per image in image_id order, top B."""
    by_id = np.argsort(ctx.canonical_rank)
    key = np.empty(len(by_id))
    key[by_id] = np.random.default_rng(ctx.seed).random(len(by_id))
    return _top_by(ctx, key, np.ones(len(by_id), bool))


def select_coreset(ctx: SelectionContext, value=None) -> Picks:
    """k-center greedy over the eligible images' z, starting from the labelled set's z."""
    eligible = ~ctx.scored.pseudo
    rows = np.flatnonzero(eligible)
    rows = rows[np.argsort(ctx.canonical_rank[rows])]
    picks = _empty_picks(ctx, np.full(len(ctx.image_ids), np.nan))
    picks.candidate[rows] = True
    z = _embed_rows(ctx, rows)
    labelled = ctx.labelled_embeddings() if ctx.labelled_embeddings else None
    labelled = normalise_rows(labelled) if labelled is not None and len(labelled) else None
    order = k_center_greedy(z, min(ctx.budget, len(rows)), labelled=labelled, seed=ctx.seed,
                            tie_rank=ctx.tie_rank[rows])
    picks.rows = rows[order]
    picks.score[picks.rows] = _pick_time_distance(z[order], labelled)
    picks.fill = np.zeros(len(picks.rows), bool)
    picks.info["coreset_start"] = "labelled" if labelled is not None else "random"
    return _with_fill(ctx, picks, eligible)


def _pick_time_distance(chosen: np.ndarray, labelled: np.ndarray | None) -> np.ndarray:
    """Distance of each pick to the nearest earlier pick or labelled image when it was picked."""
    gram = ((chosen[:, None, :] - chosen[None, :, :]) ** 2).sum(-1)
    earlier = np.where(np.tri(len(chosen), k=-1, dtype=bool), gram, np.inf).min(axis=1)
    if labelled is not None:
        sq = (chosen ** 2).sum(1)[:, None] - 2 * chosen @ labelled.T + (labelled ** 2).sum(1)[None]
        earlier = np.minimum(earlier, np.maximum(sq, 0).min(axis=1))
    return np.sqrt(earlier)
