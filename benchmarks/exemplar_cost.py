"""What exemplar rarity costs (issue 29): L's prototypes, and the pool pass with and without them.

Exemplar rarity adds to the pool's one detector pass a gather of each kept box's classification
feature, its cosine to C prototypes and a softmax (selection/exemplar.py), and writes C more
floats per image; the prototypes take one pass over L. This times both through the detector
actors' per-batch function (DetectStage.process) on a `taast run`'s warm-up model, pool and L0,
alternating runs with and without prototypes, and extrapolates to a million-image pool.

    python benchmarks/exemplar_cost.py --run runs/replay/shapes_21 --images 512 \\
        --out benchmarks/results/exemplar_cost_cpu.json

Last line: ``per_image_ms=<without> -> <with> (+x%) prototypes_s=<s> for <n> L images``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import taast_ray  # noqa: F401  (offline switches for Ultralytics: import before it)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a `taast run` directory (its warm-up, pool and L0)")
    p.add_argument("--images", type=int, default=512, help="pool images per timed pass")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import pyarrow.parquet as pq

    from taast_ray.data.labels import load_labels
    from taast_ray.loop.cycle import saved_run_config
    from taast_ray.loop.layout import RunLayout
    from taast_ray.loop.sources import resolve_dataset
    from taast_ray.pipeline.exemplars import build_prototypes
    from taast_ray.stages.detect import DetectStage
    from taast_ray.versions import software_versions

    run = RunLayout(args.run)
    cfg = saved_run_config(args.run)
    l0 = load_labels(run.labels_l0)
    images = resolve_dataset(cfg, run).images  # data.images, or the run's synthetic set
    weights, imgsz = str(run.warmup.weights), cfg.model.input_size
    build_prototypes(weights, l0, images, imgsz=imgsz, device="cpu", temperature=0.1)  # warm caches
    t0 = time.perf_counter()
    protos, record = build_prototypes(weights, l0, images, imgsz=imgsz, device="cpu", temperature=0.1)
    prototype_s = time.perf_counter() - t0
    table = pq.read_table(run.pool, columns=["image_id", "uri"]).slice(0, args.images)
    ids, uris = table.column("image_id").to_pylist(), table.column("uri").to_pylist()
    blobs = [Path(u).read_bytes() for u in uris]
    stages = {}
    for name, extra in (("without", {}), ("with", {"exemplars": protos.to_dict()})):
        stages[name] = DetectStage(weights, imgsz=imgsz, conf=cfg.selection.det_conf, num_classes=l0.num_classes,
                                   device="cpu", **extra)
        stages[name].ensure_setup()

    def one_pass(stage):
        t = time.perf_counter()
        out = [stage.process({"image_id": ids[a:a + args.batch], "uri": uris[a:a + args.batch],
                              "bytes": blobs[a:a + args.batch]}) for a in range(0, len(ids), args.batch)]
        return time.perf_counter() - t, sum(o.nbytes for o in out)

    for stage in stages.values():  # one untimed pass each
        one_pass(stage)
    times = {name: [] for name in stages}
    nbytes = {}
    for _ in range(args.repeats):
        for name, stage in stages.items():
            seconds, nbytes[name] = one_pass(stage)
            times[name].append(seconds)
    per_image = {name: 1000 * min(v) / len(ids) for name, v in times.items()}
    extra_ms = per_image["with"] - per_image["without"]
    result = {
        "run": str(args.run), "pool_images_timed": len(ids), "repeats": args.repeats, "batch": args.batch,
        "imgsz": imgsz, "classes": l0.num_classes, "feature_dim": int(protos.vectors.shape[1]),
        "per_image_ms": per_image, "extra_ms_per_image": extra_ms,
        "extra_share": extra_ms / per_image["without"],
        "arrow_bytes_per_image": {k: v / len(ids) for k, v in nbytes.items()},
        "prototypes": {"seconds": prototype_s, "l_images": record["images"], "l_boxes": record["boxes"],
                       "ms_per_l_image": 1000 * prototype_s / max(record["images"], 1)},
        "million_image_pool": {"extra_cpu_hours_at_this_rate": extra_ms * 1e6 / 3.6e6,
                               "extra_gib_detections": 4 * l0.num_classes * 1e6 / 2**30},
        "all_times_s": times, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "versions": software_versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"per_image_ms={per_image['without']:.2f} -> {per_image['with']:.2f} "
          f"({100 * result['extra_share']:+.1f}%) prototypes_s={prototype_s:.1f} for {record['images']} L images "
          f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
