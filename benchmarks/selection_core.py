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
import pyarrow.parquet as pq

import taast_ray  # noqa: F401
from taast_ray.bench.data import clustered_embeddings, synthetic_detections
from taast_ray.bench.selection import SELECTION, kmeans_vs_sklearn
from taast_ray.selection.candidates import id_rank, top_candidates
from taast_ray.selection.detections import read_detections
from taast_ray.selection.kmeans import pick_nearest_to_means, run_kmeans
from taast_ray.selection.scoring import score_images
from taast_ray.selection.strategies import normalise_rows
from taast_ray.versions import software_versions


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def write_synthetic_detections(path: Path, n_images: int, classes: int, mean_boxes: float,
                               seed: int) -> None:
    pq.write_table(synthetic_detections(n_images, classes, mean_boxes, seed), path, row_group_size=1 << 17)


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
