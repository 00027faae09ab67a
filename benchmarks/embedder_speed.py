"""Images/s of each embedder on this CPU at the demo's sizes (160-px synthetic images, batch 32).

One torch thread, as a Ray actor of one CPU runs (Ray sets OMP_NUM_THREADS=1 for it). One warm-up
batch each, then ``--rounds`` rounds, each timing one batch of every model in turn; the best and
the median round are reported (the machine is shared: the best round is the least disturbed). ``detector`` is the *extra* time
the detection pass spends pooling its neck features: the detector (YOLOv8n, imgsz 160) with and
without ``embed=True``. Last line: one ``name=images/s`` per embedder (best round).

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


def rates(models: dict, images: list, rounds: int) -> dict:
    """Round-robin: every round times one batch of each model in turn, so a change in the shared
    machine's load hits all of them alike; best and median round per model."""
    seconds = {name: [] for name in models}
    for fn, batch in models.values():
        fn(images[:batch])  # warm-up
    for _ in range(rounds):
        for name, (fn, batch) in models.items():
            start = time.perf_counter()
            fn(images[:batch])
            seconds[name].append(time.perf_counter() - start)
    return {name: {"images": models[name][1],
                   "best_images_per_s": round(models[name][1] / min(s), 2),
                   "median_images_per_s": round(models[name][1] / statistics.median(s), 2),
                   "seconds": [round(x, 3) for x in s]} for name, s in seconds.items()}


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
    models = {}
    for name, weights in [("mobilenetv2-imagenet", "imagenet"), ("taast-tiny-ViT", "none")]:
        models[name] = (make_embedder(name, weights, device="cpu").embed, args.batch)
    for key, embed in (("yolov8n-160", False), ("yolov8n-160+embed", True)):
        det = Detector("yolov8n.yaml", imgsz=160, conf=0.25, num_classes=12, device="cpu", embed=embed)
        models[key] = (det.predict_rows, args.batch)
    if args.vit_l:  # 0.5 images/s: a batch of 8
        models["ViT-L-14-quickgelu"] = (make_embedder("ViT-L-14-quickgelu", "none", device="cpu").embed, 8)
    results = rates(models, images, args.rounds)
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
