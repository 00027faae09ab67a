"""Selection core at fleet scale on this machine (SPEC.md §8, first bullet).

N images × ~8 boxes × 80 classes are read from a detections parquet file (the contract of
SPEC.md §3) in one streaming pass that validates and reduces each record batch to per-image
scalars; then class weights and φ, the candidates (eq. 8, bounded top-k), their 768-d embeddings
(20 % of N, a memory-mapped float32 file), k-means with k = 256 and the nearest member of each
cluster, and the output files. The inputs are generated first, chunk by chunk onto disk, by a
child process, so neither their time nor their memory counts below. Each stage reports its
time and its own peak RSS (the kernel's high-water mark, reset at the start of the stage), and
of that peak the part held by anonymous memory as opposed to mapped file pages.

    .venv/bin/python benchmarks/selection_core.py --images 1000000 --json benchmarks/results/selection_core_cpu.json
    .venv/bin/python benchmarks/selection_core.py --images 10000000 --sklearn-n 0 --json ...
    .venv/bin/python benchmarks/selection_core.py --plot benchmarks/results/selection_core_scaling.png A.json B.json ...

ends with one line `total_seconds=<float> peak_rss_gb=<float> kmeans_speedup_vs_sklearn=<float>`.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import taast_ray  # noqa: F401
from taast_ray.bench.selection import (SELECTION, kmeans_vs_sklearn, normalise_in_place,
                                       write_detections_streaming, write_embeddings_streaming)
from taast_ray.bench.data import write_categories
from taast_ray.config import TaastConfig
from taast_ray.data.labels import load_labels
from taast_ray.selection.candidates import top_candidates
from taast_ray.selection.kmeans import pick_nearest_to_means, run_kmeans
from taast_ray.outputs.files import write_selection_outputs
from taast_ray.contracts.pool import stream_pool
from taast_ray.selection.scoring import finish_scores
from taast_ray.selection.strategies import Picks
from taast_ray.versions import software_versions

GB = 1024 ** 3


def _status_kb(*keys: str) -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in keys:
                out[name] = int(value.split()[0])
    return out


class StagePeaks:
    """Per-stage time and peak RSS: VmHWM reset through /proc/self/clear_refs at each stage's
    start, and RssAnon sampled every 10 ms (file pages of memory maps are the rest)."""

    def __init__(self):
        self.stages: dict[str, dict] = {}
        self._anon = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while not self._stop.wait(0.01):
            self._anon = max(self._anon, _status_kb("RssAnon").get("RssAnon", 0))

    def run(self, stage: str, fn):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self._anon = _status_kb("RssAnon").get("RssAnon", 0)
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        status = _status_kb("VmHWM", "RssAnon")
        anon = max(self._anon, status.get("RssAnon", 0))
        self.stages[stage] = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "peak_rss_gb": round(status["VmHWM"] * 1024 / GB, 3),
                              "peak_anon_gb": round(anon * 1024 / GB, 3)}
        s = self.stages[stage]
        print(f"  {stage:<14} {s['seconds']:8.2f} s  (cpu {s['cpu_seconds']:7.2f} s)  peak rss {s['peak_rss_gb']:6.2f} GB "
              f"(anonymous {s['peak_anon_gb']:.2f} GB)", flush=True)
        return value

    def stop(self):
        self._stop.set()


def generate(work: Path, images: int, classes: int, boxes: float, dim: int, seed: int) -> None:
    write_detections_streaming(work / "detections.parquet", images, classes, boxes, seed)
    write_embeddings_streaming(work / "embeddings.f32", math.ceil(0.2 * images), dim, seed)
    write_categories(work / "labels.json", classes)


def selection_core(work: Path, classes: int, dim: int, budget: int, seed: int, backend: str,
                   peaks: StagePeaks) -> dict:
    run = peaks.run
    pool = run("read_validate", lambda: stream_pool(work / "detections.parquet", classes, 0.8,
                                                    spool_dir=work))
    labelled = np.random.default_rng(seed).integers(0, 500, classes)
    scored = run("score", lambda: finish_scores(pool.entropy, pool.candidate_class, pool.pseudo,
                                                pool.pseudo_counts["images"], labelled, classes))
    ranks = run("rank_ids", lambda: pool.seeded_tie_rank(seed))  # the product's tie-break
    cand = run("candidates", lambda: top_candidates(scored.value, ~scored.pseudo, ranks, 0.2, budget))
    rows = len(cand)

    def embeddings():  # the candidates' rows, memory-mapped, normalised in place
        z = np.memmap(work / "embeddings.f32", dtype=np.float32, mode="r+").reshape(-1, dim)[:rows]
        return normalise_in_place(z)

    z = run("embeddings", embeddings)
    km = run("kmeans", lambda: run_kmeans(z, budget, seed=seed, iters=SELECTION.kmeans_iters,
                                          backend=backend,
                                          max_points_per_centroid=SELECTION.kmeans_max_points_per_centroid))
    chosen = run("pick", lambda: cand[pick_nearest_to_means(z, km.assignment, budget, ranks[cand])])

    def write():
        n = pool.num_images
        cluster = np.full(n, -1, np.int32)
        cluster[cand] = km.assignment
        candidate = np.zeros(n, bool)
        candidate[cand] = True
        order = chosen[np.lexsort((ranks[chosen], -scored.value[chosen]))]
        picks = Picks(order, scored.value, candidate, cluster, np.zeros(len(order), bool))
        labels = load_labels(work / "labels.json")
        write_selection_outputs(work / "out", pool, scored, picks, labels,
                                {"images": n, "note": "benchmark", "config": TaastConfig().to_dict()})

    run("write", write)
    result = {"images": pool.num_images, "boxes": pool.num_boxes, "pseudo": int(scored.pseudo.sum()),
              "candidates": rows, "selected": int(len(chosen)), "kmeans_backend": km.backend,
              "kmeans_inertia": float(km.inertia),
              "candidate_embeddings_gb": round(rows * dim * 4 / GB, 3),
              "candidate_embeddings": "memory-mapped float32 file, normalised in place"}
    pool.close()
    return result


def plot(out: Path, reports: list[Path]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = sorted((json.loads(p.read_text()) for p in reports), key=lambda r: r["selection"]["images"])
    n = [r["selection"]["images"] for r in data]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_t.plot(n, [r["total_seconds"] for r in data], "o-", label="total")
    ax_t.plot(n, [r["stages"]["read_validate"]["seconds"] for r in data], "s--", label="read + validate + reduce")
    for r, x in zip(data, n):  # a shared machine: the load average says what the time is worth
        if r.get("load_average"):
            ax_t.annotate(f"load {r['load_average'][0]:g}", (x, r["total_seconds"]), fontsize=7,
                          textcoords="offset points", xytext=(4, 4))
    ax_t.set(xscale="log", yscale="log", xlabel="pool size (images)", ylabel="seconds",
             title="selection core time, 2 CPU cores (shared)")
    ax_m.plot(n, [r["peak_rss_gb"] for r in data], "o-", label="peak RSS (all stages)")
    ax_m.plot(n, [max(s["peak_anon_gb"] for s in r["stages"].values()) for r in data], "s--",
              label="peak anonymous memory")
    ax_m.plot(n, [r["selection"]["candidate_embeddings_gb"] for r in data], ":", label="candidate embeddings (mmap)")
    ax_m.set(xscale="log", xlabel="pool size (images)", ylabel="GiB", title="peak memory")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    summary = {"points": [{"images": r["selection"]["images"], "total_seconds": r["total_seconds"],
                           "peak_rss_gb": r["peak_rss_gb"],
                           "peak_anon_gb": max(s["peak_anon_gb"] for s in r["stages"].values()),
                           "load_average": r.get("load_average"), "cpu_seconds": r.get("cpu_seconds"),
                           "stages": r["stages"]} for r in data]}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")


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
    parser.add_argument("--work", type=Path, help="folder for the generated inputs (default: TMPDIR)")
    parser.add_argument("--inputs", type=Path, help="keep the generated inputs in this folder and "
                        "reuse them when it already holds them (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="plot time and memory against pool size from the "
                        "JSON reports given as arguments, and stop")
    parser.add_argument("reports", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.plot:
        plot(args.plot, args.reports)
        return 0

    print(f"generating {args.images:,} images × ~{args.boxes:g} boxes × {args.classes} classes "
          f"onto disk, chunk by chunk ...", flush=True)
    start = time.perf_counter()
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = args.inputs or Path(tempfile.mkdtemp(prefix="taast-bench-", dir=args.work))
    if not (work / "labels.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        child = multiprocessing.get_context("spawn").Process(
            target=generate, args=(work, args.images, args.classes, args.boxes, args.dim, args.seed))
        child.start()
        child.join()
        if child.exitcode:
            shutil.rmtree(work, ignore_errors=True)
            raise SystemExit(f"generating the inputs failed (exit {child.exitcode})")
    size = sum(p.stat().st_size for p in work.iterdir() if p.is_file()) / 1e9
    print(f"  generated {size:.2f} GB in {time.perf_counter() - start:.1f} s (not timed below)", flush=True)
    load = [round(v, 2) for v in os.getloadavg()]
    print(f"  load average before the run: {load}", flush=True)

    peaks = StagePeaks()
    try:
        result = selection_core(work, args.classes, args.dim, args.budget, args.seed, args.backend, peaks)
    finally:
        shutil.rmtree(work / "out", ignore_errors=True)
        if not args.inputs:
            shutil.rmtree(work, ignore_errors=True)
        peaks.stop()
    stages = peaks.stages
    total = round(sum(s["seconds"] for s in stages.values()), 3)
    cpu_total = round(sum(s["cpu_seconds"] for s in stages.values()), 3)
    compare = kmeans_vs_sklearn(args.sklearn_n, args.dim, args.budget, 20, args.seed) \
        if args.sklearn_n else {}
    if compare:
        print(f"  kmeans {compare['n']:,}×{compare['dim']} k={compare['k']}: faiss "
              f"{compare['faiss_seconds']} s vs sklearn {compare['sklearn_seconds']} s "
              f"(×{compare['speedup']}), inertia ratio {compare['inertia_ratio']:.4f}")
    peak = max(s["peak_rss_gb"] for s in stages.values())
    report = {"selection": result, "stages": stages,
              "timings_s": {k: s["seconds"] for k, s in stages.items()}, "total_seconds": total,
              "cpu_seconds": cpu_total, "peak_rss_gb": peak, "peak_anon_gb": max(s["peak_anon_gb"] for s in stages.values()),
              "load_average": load, "kmeans_vs_sklearn": compare,
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                       if k not in ("plot", "reports")},
              "versions": software_versions()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total_seconds={total} peak_rss_gb={peak} "
          f"kmeans_speedup_vs_sklearn={compare.get('speedup', float('nan'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
