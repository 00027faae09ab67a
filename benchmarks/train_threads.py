"""Training speed of one Ray Train worker by ``train.cpus_per_worker``, at the demo's sizes.

The demo's warm-up shape: 140 synthetic training images at 160 px, 16 classes, YOLOv8n from its
YAML, batch 16, AdamW. Each setting trains ``--short`` and then ``--long`` epochs; the difference
over the extra epochs is the time per epoch without Ray Train's start-up (which the wall time of
a short run is mostly made of). ``None`` is the default (Ultralytics' own thread count,
min(8, cores − 1)); the others hold that many CPUs and train with that many torch threads.

Usage: ``python benchmarks/train_threads.py [--cpus 1 2] [--out benchmarks/results/train_threads_cpu.json]``
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import taast_ray  # noqa: F401  (offline switches before Ultralytics)
from taast_ray.bench.measure import hardware
from taast_ray.config import TrainConfig
from taast_ray.data.synth import make_synthetic_dataset
from taast_ray.ray_env import ensure_ray
from taast_ray.training.trainer import fine_tune
from taast_ray.versions import software_versions


def seconds(dataset: Path, out: Path, epochs: int, cpus: int | None) -> tuple[float, list]:
    start = time.perf_counter()
    train = TrainConfig(imgsz=160, batch=16, workers=1, lr0=0.002, optimizer="AdamW", cpus_per_worker=cpus)
    result = fine_tune(train, dataset, "yolov8n.yaml", out, epochs=epochs, seed=0, use_gpu="false")
    return time.perf_counter() - start, [s.get("threads") for s in result["seen"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, nargs="*", default=[os.cpu_count() or 1],
                        help="cpus_per_worker settings to time beside the default (default: all cores)")
    parser.add_argument("--short", type=int, default=1)
    parser.add_argument("--long", type=int, default=6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ensure_ray()
    machine, rows = hardware(), []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_synthetic_dataset(data, images=200, classes=16, seed=0, image_size=160, zipf=0.8)
        for cpus in [None, *args.cpus]:
            short, _ = seconds(data / "yolo" / "dataset.yaml", Path(tmp) / f"s{cpus}", args.short, cpus)
            long, threads = seconds(data / "yolo" / "dataset.yaml", Path(tmp) / f"l{cpus}", args.long, cpus)
            per_epoch = (long - short) / (args.long - args.short)
            rows.append({"cpus_per_worker": cpus, "threads": threads, "wall_s_short": round(short, 1),
                         "wall_s_long": round(long, 1), "s_per_epoch": round(per_epoch, 2)})
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["s_per_epoch"]
    for r in rows:
        r["speed_up"] = round(base / r["s_per_epoch"], 2) if r["s_per_epoch"] > 0 else None
    machine["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    report = {"settings": {"images": 140, "imgsz": 160, "classes": 16, "batch": 16, "model": "yolov8n.yaml",
                           "epochs": [args.short, args.long]},
              "hardware": machine, "versions": software_versions(), "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(" ".join(f"cpus_per_worker={r['cpus_per_worker']}:{r['s_per_epoch']}s/epoch" for r in rows))


if __name__ == "__main__":
    main()
