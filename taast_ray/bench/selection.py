"""Rates of the central actor's work (scoring, k-means, pick) and FAISS against scikit-learn."""
from __future__ import annotations

import numpy as np

from taast_ray.bench.data import clustered_embeddings, synthetic_box_rows
from taast_ray.bench.measure import rate, timer
from taast_ray.config import SelectionConfig
from taast_ray.selection.candidates import top_candidates
from taast_ray.selection.kmeans import pick_nearest_to_means, run_kmeans
from taast_ray.selection.scoring import score_images
from taast_ray.selection.strategies import normalise_rows

SELECTION = SelectionConfig()  # the product's defaults: k-means iterations, points per centroid


def selection_rates(*, images: int, classes: int, candidates: int, dim: int, budget: int, share: float,
                    seed: int, backend: str = "auto") -> dict:
    """Scoring (eqs. 1-8) over ``images`` synthetic images, then k-means and pick over
    ``candidates`` clustered rows; each rate also as the pool size it keeps up with."""
    _, scores, offsets = synthetic_box_rows(images, classes, 8.0, seed)
    labelled = np.random.default_rng(seed).integers(0, 500, classes)
    with timer() as scoring:
        scored = score_images(scores, offsets, labelled)
        top_candidates(scored.value, ~scored.pseudo, np.arange(images), share, budget)
    z = normalise_rows(clustered_embeddings(candidates, dim, seed))
    with timer() as clustering:
        km = run_kmeans(z, budget, seed=seed, iters=SELECTION.kmeans_iters, backend=backend,
                        max_points_per_centroid=SELECTION.kmeans_max_points_per_centroid)
    with timer() as picking:
        pick_nearest_to_means(z, km.assignment, budget, np.arange(candidates))
    return {"scoring": rate(images, scoring()),
            "kmeans": {**rate(candidates, clustering(), share), "backend": km.backend, "k": budget,
                       "dim": dim, "iterations": km.iterations},
            "pick": rate(candidates, picking(), share)}


def kmeans_vs_sklearn(n: int, dim: int, k: int, iters: int, seed: int) -> dict:
    """Same data, same k, same iteration cap; inertia over all points for both."""
    from sklearn.cluster import KMeans

    z = normalise_rows(clustered_embeddings(n, dim, seed + 1, centres=4 * k))
    with timer() as ours_s:
        ours = run_kmeans(z, k, seed=seed, iters=iters, backend="faiss",
                          max_points_per_centroid=SELECTION.kmeans_max_points_per_centroid)
    with timer() as ref_s:
        ref = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iters, random_state=seed).fit(z)
    return {"n": n, "dim": dim, "k": k, "iters": iters, "faiss_seconds": round(ours_s(), 3),
            "sklearn_seconds": round(ref_s(), 3), "speedup": round(ref_s() / ours_s(), 2),
            "faiss_inertia": float(ours.inertia), "sklearn_inertia": float(ref.inertia_),
            "inertia_ratio": float(ours.inertia / ref.inertia_)}
