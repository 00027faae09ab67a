"""Images/s of each embedder on this CPU at the demo's sizes (160-px synthetic images, batch 32).

One torch thread, as a Ray actor of one CPU runs (Ray sets OMP_NUM_THREADS=1 for it). For each:
one warm-up batch, then ``--rounds`` timed batches; the best and the median round are reported
(the machine is shared: the best round is the least disturbed). ``detector`` is the *extra* time
the detection pass spends pooling its neck features: the detector (YOLOv8n, imgsz 160) with and
without ``embed=True``, interleaved three times (best of all rounds each). Last line: one ``name=images/s`` per embedder (best round).

Usage: ``python benchmarks/embedder_speed.py [--out benchmarks/results/embedder_speed_cpu.json]``
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import taast_ray  # noqa: F401  (offline switches before Ultralytics)
from taast_ray.data.synth import _render, class_names


def demo_images(n: int, size: int = 160, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    names = class_names(12)
    return [np.asarray(_render(rng, size, rng.integers(0, 12, rng.integers(1, 4)), names)[0]) for _ in range(n)]


def rate(fn, images, rounds: int) -> dict:
    fn(images)  # warm-up
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(images)
        seconds.append(time.perf_counter() - start)
    return {"best_images_per_s": round(len(images) / min(seconds), 2),
            "median_images_per_s": round(len(images) / statistics.median(seconds), 2),
            "seconds": [round(s, 3) for s in seconds]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--vit-l", action="store_true", help="also time CLIP ViT-L/14 (random weights, slow)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from taast_ray.models.detector import Detector
    from taast_ray.models.embedder import make_embedder

    images = demo_images(args.batch)
    results = {}
    for name, weights in [("mobilenetv2-imagenet", "imagenet"), ("taast-tiny-ViT", "none")] + \
            ([("ViT-L-14-quickgelu", "none")] if args.vit_l else []):
        emb = make_embedder(name, weights, device="cpu")
        results[name] = rate(emb.embed, images if name != "ViT-L-14-quickgelu" else images[:8],
                             args.rounds if name != "ViT-L-14-quickgelu" else 2)
        del emb
    plain = Detector("yolov8n.yaml", imgsz=160, conf=0.25, num_classes=12, device="cpu")
    pooled = Detector("yolov8n.yaml", imgsz=160, conf=0.25, num_classes=12, device="cpu", embed=True)
    for _ in range(3):  # interleaved, so a change in the machine's load hits both alike
        for key, det in (("yolov8n-160", plain), ("yolov8n-160+embed", pooled)):
            r = rate(det.predict_rows, images, args.rounds)
            if r["best_images_per_s"] > results.get(key, {}).get("best_images_per_s", 0):
                results[key] = r
    extra = (1 / results["yolov8n-160+embed"]["best_images_per_s"] - 1 / results["yolov8n-160"]["best_images_per_s"])
    results["detector"] = {"extra_ms_per_image": round(1000 * extra, 3)}
    report = {"batch": args.batch, "image_size": 160, "torch_threads": 1, "load_average": os.getloadavg(),
              "results": results}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(" ".join(f"{k}={v['best_images_per_s']}" for k, v in results.items() if "best_images_per_s" in v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
