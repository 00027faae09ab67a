"""Selection core at fleet scale on this machine (SPEC.md §8, first bullet).

1,000,000 images × ~8 boxes × 80 classes are read from a detections parquet file (the contract of
SPEC.md §3), validated and scored, candidates are chosen (eq. 8), 200,000 × 768-d candidate
embeddings are clustered with k = 256 and the nearest member of each cluster picked. The file is
generated first by a child process, so neither its time nor its memory counts below.
Then FAISS k-means is compared with scikit-learn's KMeans(init="k-means++") on the same data.

    .venv/bin/python benchmarks/selection_core.py --images 1000000

ends with one line `total_seconds=<float> peak_rss_gb=<float> kmeans_speedup_vs_sklearn=<float>`.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import taast_ray  # noqa: F401
from taast_ray.config import SelectionConfig
from taast_ray.selection.candidates import id_rank, top_candidates
from taast_ray.selection.detections import read_detections
from taast_ray.selection.kmeans import pick_nearest_to_means, run_kmeans
from taast_ray.selection.scoring import score_images
from taast_ray.selection.strategies import normalise_rows
from taast_ray.versions import software_versions


SELECTION = SelectionConfig()  # the product's defaults: k-means iterations, points per centroid


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def write_synthetic_detections(path: Path, n_images: int, classes: int, mean_boxes: float,
                               seed: int) -> None:
    pq.write_table(synthetic_detections(n_images, classes, mean_boxes, seed), path, row_group_size=1 << 17)


def synthetic_detections(n_images: int, classes: int, mean_boxes: float, seed: int) -> pa.Table:
    """Sigmoid-like score rows (mostly small, one peak per box), built without Python lists."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_boxes, n_images).astype(np.int32)
    n_boxes = int(counts.sum())
    scores = rng.random((n_boxes, classes), dtype=np.float32)
    np.power(scores, 6, out=scores)
    scores *= 0.3
    scores[np.arange(n_boxes), rng.integers(0, classes, n_boxes)] = rng.beta(5, 2, n_boxes)
    boxes = rng.uniform(0, 600, (n_boxes, 4)).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    image_offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))

    def nested(values: np.ndarray, width: int) -> pa.Array:
        # int64 inner offsets: 8M boxes × 80 classes is within int32, a larger pool is not
        inner = pa.LargeListArray.from_arrays(pa.array(np.arange(0, values.size + 1, width)),
                                              pa.array(values.reshape(-1)))
        return pa.ListArray.from_arrays(image_offsets, inner)

    ids = pa.array([f"frame_{i:08d}" for i in range(n_images)], pa.string())
    return pa.table({"image_id": ids, "boxes": nested(boxes, 4), "scores": nested(scores, classes)})


def clustered_embeddings(n: int, dim: int, seed: int, centres: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, dim), dtype=np.float32)
    x = means[rng.integers(0, centres, n)]
    x += 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    return x


def selection_core(path: Path, classes: int, embeddings: np.ndarray, budget: int, seed: int,
                   backend: str, timings: dict) -> dict:
    def timed(stage, fn):
        start = time.perf_counter()
        value = fn()
        timings[stage] = round(time.perf_counter() - start, 3)
        print(f"  {stage:<12} {timings[stage]:8.2f} s   peak rss {peak_rss_gb():.2f} GB", flush=True)
        return value

    det = timed("read_validate", lambda: read_detections(path, classes))
    labelled = np.random.default_rng(seed).integers(0, 500, classes)
    scored = timed("score", lambda: score_images(det.scores, det.offsets, labelled))
    ranks = timed("rank_ids", lambda: id_rank(det.image_ids))
    cand = timed("candidates", lambda: top_candidates(scored.value, ~scored.pseudo, ranks, 0.2, budget))
    z = timed("normalise", lambda: normalise_rows(embeddings[:len(cand)]))
    km = timed("kmeans", lambda: run_kmeans(z, budget, seed=seed, iters=SELECTION.kmeans_iters, backend=backend,
                                            max_points_per_centroid=SELECTION.kmeans_max_points_per_centroid))
    picks = timed("pick", lambda: pick_nearest_to_means(z, km.assignment, budget, ranks[cand]))
    return {"images": det.num_images, "boxes": int(det.offsets[-1]), "pseudo": int(scored.pseudo.sum()),
            "candidates": int(len(cand)), "selected": int(len(picks)), "kmeans_backend": km.backend,
            "kmeans_inertia": float(km.inertia)}


def kmeans_vs_sklearn(n: int, dim: int, k: int, iters: int, seed: int) -> dict:
    """Same data, same k, same iteration cap; inertia over all points for both."""
    from sklearn.cluster import KMeans

    z = normalise_rows(clustered_embeddings(n, dim, seed + 1, centres=4 * k))
    start = time.perf_counter()
    ours = run_kmeans(z, k, seed=seed, iters=iters, backend="faiss",
                      max_points_per_centroid=SELECTION.kmeans_max_points_per_centroid)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iters, random_state=seed).fit(z)
    ref_s = time.perf_counter() - start
    return {"n": n, "dim": dim, "k": k, "iters": iters, "faiss_seconds": round(ours_s, 3),
            "sklearn_seconds": round(ref_s, 3), "speedup": round(ref_s / ours_s, 2),
            "faiss_inertia": float(ours.inertia), "sklearn_inertia": float(ref.inertia_),
            "inertia_ratio": float(ours.inertia / ref.inertia_)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--boxes", type=float, default=8.0, help="mean boxes per image (Poisson)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--budget", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="faiss")
    parser.add_argument("--sklearn-n", type=int, default=50_000,
                        help="points for the scikit-learn comparison (0 skips it)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    print(f"generating {args.images:,} images × ~{args.boxes:g} boxes × {args.classes} classes ...",
          flush=True)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="taast-bench-"))
    path = work / "detections.parquet"
    child = multiprocessing.get_context("spawn").Process(
        target=write_synthetic_detections, args=(path, args.images, args.classes, args.boxes, args.seed))
    child.start()
    child.join()
    n_cand = int(np.ceil(0.2 * args.images))
    embeddings = clustered_embeddings(n_cand, args.dim, args.seed)
    print(f"  generated {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - start:.1f} s "
          f"(not timed below)", flush=True)

    timings: dict = {}
    try:
        result = selection_core(path, args.classes, embeddings, args.budget, args.seed, args.backend,
                                timings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = round(sum(timings.values()), 3)
    del embeddings
    compare = kmeans_vs_sklearn(args.sklearn_n, args.dim, args.budget, 20, args.seed) \
        if args.sklearn_n else {}
    if compare:
        print(f"  kmeans {compare['n']:,}×{compare['dim']} k={compare['k']}: faiss "
              f"{compare['faiss_seconds']} s vs sklearn {compare['sklearn_seconds']} s "
              f"(×{compare['speedup']}), inertia ratio {compare['inertia_ratio']:.4f}")
    report = {"selection": result, "timings_s": timings, "total_seconds": total,
              "peak_rss_gb": round(peak_rss_gb(), 3), "kmeans_vs_sklearn": compare,
              "args": vars(args) | {"json": str(args.json) if args.json else None},
              "versions": software_versions()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total_seconds={total} peak_rss_gb={report['peak_rss_gb']} "
          f"kmeans_speedup_vs_sklearn={compare.get('speedup', float('nan'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
