"""``taast bench``: images/s of each stage and end to end over a generated JPEG pool, for any
number of actors; one JSON (settings, hardware, versions, results) and a PNG of the scaling.

Parts (``--parts``): ``stages`` read, decode (torch and Pillow), detector, detections table,
candidates, embedder, each alone, then the fused pass; ``selection`` scoring, k-means and pick
at pool scale on synthetic inputs; ``sklearn`` FAISS k-means against scikit-learn; ``ray`` the
Ray detector pass against a plain loop per actor count; ``e2e`` the whole ``taast select --pool``
per actor count.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from taast_ray.bench.options import CPU_DEFAULTS, add_pass_arguments, frame_size, int_list, load_models
from taast_ray.errors import ConfigError

PARTS = ("stages", "selection", "sklearn", "ray", "e2e")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="bench.json", help="results JSON; the plot goes beside it as .png")
    parser.add_argument("--images", type=int, default=600, help="JPEGs in the generated pool (default 600)")
    parser.add_argument("--actors", default="1,2", help="actor counts to run, e.g. 1,2,4 (default 1,2)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    parser.add_argument("--budget", type=int, default=256, help="k of k-means (default 256)")
    parser.add_argument("--score-images", type=int, default=200_000,
                        help="images scored in the selection part (default 200000)")
    parser.add_argument("--kmeans-candidates", type=int, default=40_000,
                        help="candidates clustered in the selection part (default 40000)")
    parser.add_argument("--dim", type=int, default=768, help="embedding size for k-means (default 768)")
    parser.add_argument("--sklearn-n", default="20000,200000",
                        help="point counts of the sklearn comparison, e.g. 20000,200000 (default; "
                             "200,000 is SPEC §8's candidate count)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="ray part: rounds of plain loop then Ray passes; medians reported (default 1)")
    add_pass_arguments(parser, CPU_DEFAULTS)


def run_bench(args: argparse.Namespace) -> int:
    from taast_ray.bench.data import write_jpeg_pool
    from taast_ray.bench.measure import hardware
    from taast_ray.io import write_json
    from taast_ray.versions import software_versions

    parts = _parts(args.parts)  # every option checked before any work starts
    width, height = frame_size(args.size)
    int_list(args.actors, "--actors"), int_list(args.workers, "--workers"), int_list(args.sklearn_n, "--sklearn-n")
    if args.repeats < 1:
        raise ConfigError(f"--repeats: must be >= 1, got {args.repeats}")
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    report = {"settings": settings, "hardware": hardware(), "versions": software_versions()}
    work = Path(tempfile.mkdtemp(prefix="taast-bench-"))
    try:
        paths = write_jpeg_pool(work / "pool", args.images, width, height, args.seed)
        if "stages" in parts:
            report["stages"] = in_process(paths, args)
        if "selection" in parts:
            report["selection"] = _selection(args)
        if "sklearn" in parts:
            from taast_ray.bench.selection import kmeans_vs_sklearn

            report["kmeans_vs_sklearn"] = [kmeans_vs_sklearn(n, args.dim, args.budget, 20, args.seed)
                                           for n in int_list(args.sklearn_n, "--sklearn-n")]
        if {"ray", "e2e"} & parts:
            report["ray"] = _ray(paths, args, work, end_to_end="e2e" in parts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["hardware"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    if "ray" in report:
        from taast_ray.bench.plot import plot_scaling

        report["plot"] = str(plot_scaling(report, out.with_suffix(".png")))
    write_json(out, report)
    for line in summary_lines(report):
        print(line)
    print(f"wrote {out}")
    return 0


def _parts(text: str) -> set[str]:
    parts = {p.strip() for p in text.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown or not parts:
        raise ConfigError(f"--parts: {text!r}: choose from {','.join(PARTS)}")
    return parts


def in_process(paths: list[Path], args: argparse.Namespace) -> dict:
    """Each stage alone over the pool (after one warm-up batch), then the fused pass."""
    from taast_ray.bench.fused import batches, run_fused, run_steps, warm_up
    from taast_ray.bench.measure import rate, timer
    from taast_ray.bench.pillow_decode import decode_batch

    models = load_models(args)
    with timer() as reading:
        payloads = [p.read_bytes() for p in paths]
    work = batches([p.name for p in paths], payloads, args.batch_size)
    warm_up(work[:1], models, args.share)
    steps = {"read": rate(len(paths), reading()), **run_steps(work, models, args.share)}
    with timer() as pillow:
        for columns in work:
            decode_batch(columns)
    steps["decode_pillow"] = rate(len(paths), pillow())
    fused = [run_fused(work, models, args.share, workers=n) for n in int_list(args.workers, "--workers")]
    per_image = {k: v["seconds"] * 1e3 / len(paths) for k, v in steps.items() if k != "decode_pillow"}
    total = sum(per_image.values())
    return {"device": str(models.device), "steps": steps, "fused": fused,
            "ms_per_pool_image": {k: round(v, 3) for k, v in per_image.items()},
            "time_share": {k: round(v / total, 3) for k, v in per_image.items()}}


def _selection(args: argparse.Namespace) -> dict:
    from taast_ray.bench.selection import selection_rates

    return selection_rates(images=args.score_images, classes=args.classes, candidates=args.kmeans_candidates,
                           dim=args.dim, budget=args.budget, share=args.share, seed=args.seed)


def _ray(paths: list[Path], args: argparse.Namespace, work: Path, *, end_to_end: bool) -> dict:
    from taast_ray.bench.data import write_categories
    from taast_ray.bench.ray_scaling import plain_loop, ray_passes
    from taast_ray.config import load_config
    from taast_ray.ray_env import cluster_address, ensure_ray

    def config_for(actors: int):
        # a budget of at most 5% of the pool, so that q·N and not B sets the candidate count
        budget = max(1, min(args.budget, len(paths) // 20))
        return load_config(None, {
            "model": {"weights": args.weights, "imgsz": args.imgsz, "embedder": args.embedder,
                      "embedder_weights": args.embedder_weights, "device": args.device},
            "selection": {"det_conf": args.det_conf, "budget": budget, "seed": args.seed,
                          "candidate_fraction": args.share},
            "ray": {"batch_size": args.batch_size, "detector_actors_min": actors,
                    "detector_actors_max": actors, "embedder_actors_min": actors,
                    "embedder_actors_max": actors}})

    actor_counts = int_list(args.actors, "--actors")
    labels = write_categories(work / "labels.json", args.classes)
    address = cluster_address(args.address)
    loops, rounds = [], []
    for round_ in range(args.repeats):  # loop then Ray, again: drift on a shared machine hits both
        loops.append(plain_loop(paths, config_for(1), args.classes))
        ensure_ray(address)
        rounds.append(ray_passes(paths[0].parent, labels, config_for, actor_counts, args.classes, work,
                                 end_to_end=end_to_end and round_ == 0))
        shape = cluster_shape()
        if not address and round_ + 1 < args.repeats:
            import ray

            ray.shutdown()  # a local instance: the next loop runs, as the first did, with no Ray beside it
    return {"cluster": shape, **merge_rounds(loops, rounds)}


def merge_rounds(loops: list[dict], rounds: list[list[dict]]) -> dict:
    """Medians over the repeats; each round's ratio is its Ray pass over the loop run just before it."""
    median = lambda values: round(float(statistics.median(values)), 3)  # noqa: E731
    loop = {**loops[0], "seconds": median([x["seconds"] for x in loops]),
            "images_per_s": median([x["images_per_s"] for x in loops]),
            "images_per_s_runs": [x["images_per_s"] for x in loops]}
    rows = []
    for i, row in enumerate(rounds[0]):
        row = dict(row)
        if "detect_pass_images_per_s" in row:
            runs = [r[i]["detect_pass_images_per_s"] for r in rounds]
            ratios = [run / x["images_per_s"] for run, x in zip(runs, loops)]
            row.update({"detect_pass_seconds": median([r[i]["detect_pass_seconds"] for r in rounds]),
                        "detect_pass_images_per_s": median(runs), "detect_pass_images_per_s_runs": runs,
                        "ratio_to_plain_loop": median(ratios),
                        "ratio_to_plain_loop_runs": [round(r, 3) for r in ratios]})
        rows.append(row)
    return {"plain_loop": loop, "repeats": len(loops), "actors": rows}


def cluster_shape() -> dict:
    """Nodes and resources of the Ray cluster the passes ran on."""
    import ray

    resources = ray.cluster_resources()
    return {"nodes": sum(1 for n in ray.nodes() if n["Alive"]), "cpus": resources.get("CPU", 0),
            "gpus": resources.get("GPU", 0)}


def summary_lines(report: dict) -> list[str]:
    """The headline numbers, one line each."""
    lines = []
    if "stages" in report:
        steps = report["stages"]["steps"]
        lines.append("per stage, images/s: " + ", ".join(
            f"{k} {v['pool_images_per_s']}" for k, v in steps.items()))
        lines += [f"fused pass, {f['workers']} worker(s): {f['images_per_s']} images/s "
                  f"({f['boxes_per_image']} boxes/image, {f['embedded_share']:.0%} embedded)"
                  for f in report["stages"]["fused"]]
    if "selection" in report:
        lines.append("selection, pool images/s: " + ", ".join(
            f"{k} {v['pool_images_per_s']}" for k, v in report["selection"].items()))
    if "kmeans_vs_sklearn" in report:
        lines += [f"n={c['n']} kmeans_speedup_vs_sklearn={c['speedup']} inertia_ratio={c['inertia_ratio']:.4f}"
                  for c in report["kmeans_vs_sklearn"]]
    if "ray" in report:
        lines.append(f"plain loop: {report['ray']['plain_loop']['images_per_s']} images/s")
        for row in report["ray"]["actors"]:
            lines.append(f"actors={row['actors']} " + (row.get("skipped") or " ".join(
                f"{k}={row[k]}" for k in ("detect_pass_images_per_s", "ratio_to_plain_loop",
                                          "end_to_end_images_per_s") if k in row)))
    return lines
