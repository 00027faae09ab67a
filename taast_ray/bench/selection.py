"""Rates of the central actor's work (scoring, k-means, pick) and FAISS against scikit-learn."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taast_ray.bench.data import clustered_embeddings, synthetic_box_rows
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
    from taast_ray.bench.measure import rate, timer  # torch: kept out of the selection core's imports

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

    from taast_ray.bench.measure import timer

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


def write_detections_streaming(path, n_images: int, classes: int, mean_boxes: float, seed: int,
                               chunk_images: int = 1 << 16) -> int:
    """The detections contract of :func:`synthetic_detections` written chunk by chunk onto disk,
    so a pool of any size is generated in the memory of one chunk; returns the number of boxes."""
    import pyarrow.parquet as pq

    from taast_ray.bench.data import synthetic_detections

    writer, boxes = None, 0
    try:
        for start in range(0, n_images, chunk_images):
            n = min(chunk_images, n_images - start)
            table = synthetic_detections(n, classes, mean_boxes, seed + 7919 * (start // chunk_images))
            ids = [f"frame_{i:08d}" for i in range(start, start + n)]
            table = table.set_column(0, "image_id", pa.array(ids, pa.string()))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=chunk_images)
            boxes += int(pc.sum(pc.list_value_length(table.column("boxes"))).as_py() or 0)
    finally:
        if writer is not None:
            writer.close()
    return boxes


def write_embeddings_streaming(path, n: int, dim: int, seed: int, chunk: int = 1 << 15,
                               centres: int = 1000) -> None:
    """``clustered_embeddings``' blobs as a raw float32 (n, dim) file, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, dim), dtype=np.float32)
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            part = np.random.default_rng([seed, start]).standard_normal((m, dim), dtype=np.float32)
            part *= 0.5
            part += means[np.random.default_rng([seed, start, 1]).integers(0, centres, m)]
            f.write(part.tobytes())


def normalise_in_place(x: np.ndarray, chunk: int = 1 << 15) -> np.ndarray:
    """z = f / ‖f‖₂ row by row (eq. 9), chunk by chunk, in x itself (a memory map stays one)."""
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        part /= np.where(norms > 0, norms, 1.0)
    return x
