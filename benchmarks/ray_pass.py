"""The Ray detector pass against a plain in-process loop over the same images (SPEC.md §8).

Both run the same code (``taast_ray.bench.ray_scaling``): read bytes, then ``DetectStage.__call__``
(decode + YOLOv8 + full score rows) on batches of the same size. Ray adds the listing, the object
store, the actor pool and the parquet write; the loop keeps everything in one process. Both
timings include loading the model.

    .venv/bin/python benchmarks/ray_pass.py --images 3000 --size 640x480 --imgsz 320 --actors 2

Ray's fixed costs (actor processes importing torch and Ultralytics, scheduling, the parquet write)
are ~15 s here, so small pools understate the steady state: 600 images gave a ratio of 0.58.
``taast bench`` runs the same comparison for several actor counts, with the end-to-end pass.

ends with one line `ray_images_per_s=<float> loop_images_per_s=<float> ratio=<float>`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import taast_ray  # noqa: F401
from taast_ray.bench.data import write_jpeg_pool
from taast_ray.bench.ray_scaling import plain_loop
from taast_ray.config import load_config
from taast_ray.pipeline.live import detect_pool
from taast_ray.ray_env import ensure_ray
from taast_ray.stages.sources import list_pool_table
from taast_ray.versions import software_versions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", default="640x480", help="JPEG resolution WxH")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--weights", default="yolov8n.yaml")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    cfg = load_config(None, {"model": {"weights": args.weights, "imgsz": args.imgsz},
                             "ray": {"batch_size": args.batch_size, "detector_actors_min": args.actors,
                                     "detector_actors_max": args.actors}})
    work = Path(tempfile.mkdtemp(prefix="taast-raypass-"))
    try:
        paths = write_jpeg_pool(work / "pool", args.images, width, height, seed=0)
        listing = list_pool_table(work / "pool")
        loop = plain_loop(paths, cfg, args.classes)
        loop_s, loop_stages = loop["seconds"], loop["stages_s"]
        print(f"loop: {args.images} images in {loop_s:.1f} s {loop_stages}", flush=True)
        ensure_ray(None)
        start = time.perf_counter()
        detect_pool(cfg, listing, work / "out", args.classes)
        ray_s = time.perf_counter() - start
        print(f"ray : {args.images} images in {ray_s:.1f} s with {args.actors} actors", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"images": args.images, "size": args.size, "imgsz": args.imgsz, "weights": args.weights,
              "actors": args.actors, "batch_size": args.batch_size, "loop_seconds": round(loop_s, 3),
              "loop_stages_s": loop_stages, "ray_seconds": round(ray_s, 3),
              "loop_images_per_s": round(args.images / loop_s, 3),
              "ray_images_per_s": round(args.images / ray_s, 3), "versions": software_versions()}
    result["ratio"] = round(result["ray_images_per_s"] / result["loop_images_per_s"], 3)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ray_images_per_s={result['ray_images_per_s']} loop_images_per_s={result['loop_images_per_s']} "
          f"ratio={result['ratio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
