"""The Ray detector pass against a plain in-process loop over the same images (SPEC.md §8).

Both run the same code: read bytes, then ``DetectStage.__call__`` (decode + YOLOv8 + full score
rows) on batches of the same size. Ray adds the listing, the object store, the actor pool and the
parquet write; the loop keeps everything in one process. Both timings include loading the model.

    .venv/bin/python benchmarks/ray_pass.py --images 3000 --size 640x480 --imgsz 320 --actors 2

Ray's fixed costs (actor processes importing torch and Ultralytics, scheduling, the parquet write)
are ~15 s here, so small pools understate the steady state: 600 images gave a ratio of 0.58.

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

import numpy as np
from PIL import Image

import taast_ray  # noqa: F401
from taast_ray.config import load_config
from taast_ray.pipeline.live import detect_shard
from taast_ray.pipeline.ray_env import ensure_ray
from taast_ray.stages.detect import DetectStage
from taast_ray.stages.sources import list_pool_table
from taast_ray.versions import software_versions


def make_pool(folder: Path, count: int, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = (rng.random((height // 8, width // 8, 3)) * 255).astype(np.uint8)
    for i in range(count):
        tile = np.roll(base, i, axis=1).repeat(8, 0).repeat(8, 1)
        Image.fromarray(tile).save(folder / f"frame_{i:06d}.jpg", quality=90)


def plain_loop(listing, cfg, num_classes: int) -> tuple[float, dict]:
    stages = {"load_model": 0.0, "read": 0.0, "decode_detect": 0.0}
    start = time.perf_counter()
    stage = DetectStage(cfg.model.weights, imgsz=cfg.model.imgsz, conf=cfg.selection.det_conf,
                        num_classes=num_classes, device="cpu")
    stages["load_model"] = time.perf_counter() - start
    uris, ids = listing.column("uri").to_pylist(), listing.column("image_id").to_pylist()
    rows = 0
    for lo in range(0, len(uris), cfg.ray.batch_size):
        t0 = time.perf_counter()
        data = [Path(u).read_bytes() for u in uris[lo:lo + cfg.ray.batch_size]]
        t1 = time.perf_counter()
        rows += stage({"image_id": ids[lo:lo + len(data)], "uri": uris[lo:lo + len(data)],
                       "bytes": data}).num_rows
        stages["read"] += t1 - t0
        stages["decode_detect"] += time.perf_counter() - t1
    assert rows == len(uris)
    return time.perf_counter() - start, {k: round(v, 3) for k, v in stages.items()}


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
        (work / "pool").mkdir()
        make_pool(work / "pool", args.images, width, height, seed=0)
        listing = list_pool_table(work / "pool")
        loop_s, loop_stages = plain_loop(listing, cfg, args.classes)
        print(f"loop: {args.images} images in {loop_s:.1f} s {loop_stages}", flush=True)
        ensure_ray(None)
        start = time.perf_counter()
        detect_shard(cfg, listing, work / "out" / "shard-00000", args.classes)
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
