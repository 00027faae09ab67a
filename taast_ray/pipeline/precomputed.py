"""One selection pass from precomputed detections (and embeddings), without Ray: read the contracts,
score, select through the strategy's record, publish. The live pass's aggregator shares its steps."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from taast_ray.config import SelectionConfig, TaastConfig
from taast_ray.data.frequency import L0_RARE_BELOW
from taast_ray.data.labels import LabelSet, load_labels
from taast_ray.errors import InputError
from taast_ray.contracts.embeddings import ParquetEmbeddings
from taast_ray.outputs.files import write_selection_outputs
from taast_ray.contracts.pool import PoolScalars, stream_pool
from taast_ray.selection import registry
from taast_ray.selection.scoring import ImageScores, class_thresholds, finish_scores
from taast_ray.selection.strategies import Picks, SelectionContext
from taast_ray.outputs.warnings import selection_warnings
from taast_ray.versions import software_versions

log = logging.getLogger(__name__)


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        yield
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 4)


def check_budget(budget: int, pool_size: int, source: str) -> None:
    if budget <= 0:
        raise InputError(f"{source}: budget must be > 0, got {budget}")
    if pool_size == 0:
        raise InputError(f"{source}: the pool is empty")
    if budget > pool_size:
        raise InputError(f"{source}: budget {budget} is larger than the pool ({pool_size} images)")


def pseudo_threshold(labels: LabelSet, sel: SelectionConfig):
    """Eq. 1's τ, or τ_k per class with ``selection.tau_rare`` (rare: < 10 images in L)."""
    return class_thresholds(sel.tau, labels.class_counts("images"), sel.tau_rare, L0_RARE_BELOW)


def score_detections(det: PoolScalars, labels: LabelSet, sel: SelectionConfig) -> ImageScores:
    """Eqs. 5–7 from the streaming pass's per-image scalars, under the strategy's rarity rule."""
    strategy = registry.strategy(sel.strategy)
    return finish_scores(det.entropy, det.candidate_class, det.pseudo, det.pseudo_counts[sel.count_mode],
                         labels.class_counts(sel.count_mode), labels.num_classes, beta=sel.beta,
                         use_rarity=strategy.uses_rarity, rule=strategy.rarity_rule,
                         image_vectors=det.image_vectors, balance_sigma=sel.balance_sigma)


class PoolIds:
    """The pool's image_ids as the strategies index them (len, rows → str array), kept in Arrow."""

    def __init__(self, pool: PoolScalars):
        self.pool = pool

    def __len__(self) -> int:
        return self.pool.num_images

    def __getitem__(self, rows) -> np.ndarray:
        return self.pool.ids(rows)


def make_context(det: PoolScalars, scored: ImageScores, sel: SelectionConfig,
                 embeddings: ParquetEmbeddings | None, labels: LabelSet) -> SelectionContext:
    return SelectionContext(
        image_ids=PoolIds(det), tie_rank=det.seeded_tie_rank(sel.seed), id_order=det.tie_rank, scored=scored,
        budget=sel.budget, seed=sel.seed, candidate_fraction=sel.candidate_fraction,
        kmeans_backend=sel.kmeans_backend, kmeans_iters=sel.kmeans_iters,
        kmeans_max_points_per_centroid=sel.kmeans_max_points_per_centroid, class_cap=sel.class_cap,
        embed=embeddings.get if embeddings is not None else None,
        labelled_embeddings=(lambda: embeddings.get_present(labels.image_id_strings()))
        if embeddings is not None else None)


def build_summary(cfg: TaastConfig, det: PoolScalars, scored: ImageScores, picks: Picks,
                  labels: LabelSet, timings: dict, extra: dict | None = None) -> dict:
    sel = cfg.selection
    names = labels.category_names
    return {
        "strategy": sel.strategy, "seed": sel.seed, "budget": sel.budget,
        "pool_size": int(det.num_images), "pseudo_labelled": int(scored.pseudo.sum()),
        "eligible": int((~scored.pseudo).sum()), "candidates": int(picks.candidate.sum()),
        "selected": int(len(picks.rows)), "filled": int(picks.fill.sum()),
        "boxes": det.num_boxes, "det_conf": sel.det_conf, "tau": sel.tau, "tau_rare": sel.tau_rare,
        "count_mode": sel.count_mode,
        "class_counts": {names[k]: int(n) for k, n in enumerate(scored.class_counts)},
        "labelled_class_counts": {names[k]: int(n)
                                  for k, n in enumerate(labels.class_counts(sel.count_mode))},
        **picks.info, **(extra or {}),
        "warnings": selection_warnings(det.box_count, picks.score, ~scored.pseudo, sel.strategy, sel.seed),
        "timings_s": timings, "versions": software_versions(), "config": cfg.to_dict(),
    }


def select_from_detections(cfg: TaastConfig, detections: str | Path, labels_path: str | Path,
                           out: str | Path, embeddings: str | Path | None = None,
                           truth_path: str | Path | None = None) -> dict:
    """Read, validate, score, select, write. Every input problem surfaces before any write."""
    sel = cfg.selection
    timer = StageTimer()
    with timer("read"):
        labels = load_labels(labels_path)
        truth = load_labels(truth_path).raw if truth_path else None  # a COCO file, checked before work
        strategy = registry.strategy(sel.strategy)
        if strategy.embeds and embeddings is None:
            raise InputError(f"--embeddings: strategy {sel.strategy!r} needs an embeddings file")
        emb = ParquetEmbeddings(embeddings) if embeddings is not None else None
    with timer("read_score"):  # one streaming pass: read, validate, eqs. 1–4 batch by batch
        det = stream_pool(detections, labels.num_classes, pseudo_threshold(labels, sel), rule=strategy.rarity_rule)
    try:
        check_budget(sel.budget, det.num_images, str(detections))
        with timer("score"):
            scored = score_detections(det, labels, sel)
        with timer("select"):
            picks = strategy.run(make_context(det, scored, sel, emb, labels))
        summary = build_summary(cfg, det, scored, picks, labels, timer.seconds,
                                {"detections": str(detections), "labels": str(labels_path),
                                 "embeddings": str(embeddings) if embeddings else None})
        with timer("write"):
            write_selection_outputs(Path(out), det, scored, picks, labels, summary,
                                    truth=truth)
    finally:
        det.close()
    log.info("selected %d of %d images (%d filled) in %s", len(picks.rows), det.num_images,
             int(picks.fill.sum()), timer.seconds)
    return summary
