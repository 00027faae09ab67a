"""Can a CPU learn the synthetic set? Train YOLOv8n from scratch within a time budget, report AP50.

Generates the default synthetic long-tailed set, trains ``yolov8n.yaml`` (random init, so no
download) on the CPU for at most ``--minutes`` of wall time in all, validates the best checkpoint
and prints per-class AP50 plus the means over LVIS frequency groups. Frequent classes should pass
0.5 AP50; rare ones (≤ 10 training images) are expected to stay low: that is the gap the active
learning loop is meant to close. Last line::

    minutes=<float> map50_frequent=<float> map50_common=<float> map50_rare=<float>

Usage: ``python benchmarks/learnability.py --out runs/learnability``
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import taast_ray  # noqa: F401  (offline switches for Ultralytics: import before it)
from taast_ray.data.synth import format_class_table, make_synthetic_dataset

VAL_RESERVE_MIN = 1.0  # budget left for Ultralytics' final validation and ours


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/learnability"))
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--classes", type=int, default=16, help="the demo's default set: 16 classes")
    p.add_argument("--zipf", type=float, default=0.8, help="the demo's default set: Zipf 0.8")
    p.add_argument("--eval-min-instances", type=int, default=25,
                   help="val/test filled to this many objects per class (train untouched)")
    p.add_argument("--epochs", type=int, default=40, help="upper bound; the time budget decides")
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--minutes", type=float, default=15.0,
                   help="wall-clock budget for the whole run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", choices=("val", "test"),
                   help="split for the final evaluation (val also picks the best checkpoint)")
    return p.parse_args(argv)


def train(yaml_path: Path, args, hours: float):
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")  # nc comes from the dataset yaml
    model.train(data=str(yaml_path), epochs=args.epochs, time=hours, imgsz=args.imgsz,
                batch=args.batch, device="cpu", workers=args.workers, plots=False, amp=False,
                val=True, project=str(args.out.resolve()), name="train", exist_ok=True,
                seed=args.seed, cache="ram", verbose=False,
                # colour is half of each class's identity: keep the saturation jitter mild
                hsv_s=0.3, close_mosaic=2, patience=1000,
                # ~10 epochs from scratch: a brisker AdamW rate than 'auto' (6e-4), short warm-up
                optimizer="AdamW", lr0=0.002, warmup_epochs=1)
    return Path(model.trainer.best)


def evaluate(weights: Path, yaml_path: Path, args) -> dict[int, float]:
    from ultralytics import YOLO

    metrics = YOLO(str(weights)).val(data=str(yaml_path), split=args.split, imgsz=args.imgsz,
                                     batch=args.batch, device="cpu", plots=False, workers=0,
                                     project=str(args.out.resolve()), name="val", exist_ok=True,
                                     verbose=False)
    # ap50 has one entry per class that has labels in the split, in ap_class_index order
    return {int(c): float(ap) for c, ap in zip(metrics.box.ap_class_index, metrics.box.ap50)}


def group_means(ap50: dict[int, float], tags: list[str]) -> dict[str, float]:
    """Mean AP50 per LVIS group over the classes present in the evaluated split (nan if none)."""
    means = {}
    for tag, key in (("f", "frequent"), ("c", "common"), ("r", "rare")):
        values = [ap50[k] for k, t in enumerate(tags) if t == tag and k in ap50]
        means[key] = sum(values) / len(values) if values else math.nan
    return means


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    stats = make_synthetic_dataset(args.out / "data", images=args.images, classes=args.classes,
                                   seed=args.seed, image_size=args.imgsz, zipf=args.zipf,
                                   eval_min_instances=args.eval_min_instances)
    print(format_class_table(stats), flush=True)
    gen_min = (time.perf_counter() - start) / 60
    hours = max(args.minutes - gen_min - VAL_RESERVE_MIN, 0.5) / 60
    best = train(Path(stats["dataset_yaml"]), args, hours)
    train_min = (time.perf_counter() - start) / 60 - gen_min
    ap50 = evaluate(best, Path(stats["dataset_yaml"]), args)
    minutes = (time.perf_counter() - start) / 60
    means = group_means(ap50, stats["frequency"])
    print(f"\nAP50 on {args.split} ({best}):")
    for k, name in enumerate(stats["names"]):
        ap = f"{ap50[k]:.3f}" if k in ap50 else "  n/a"
        n_train = stats["image_counts"]["train"][k]
        print(f"  {name:<16} {stats['frequency'][k]}  train_images={n_train:<5} ap50={ap}")
    result = {"minutes": minutes, "minutes_generate": gen_min, "minutes_train": train_min,
              "map50": means, "ap50": {stats["names"][k]: v for k, v in sorted(ap50.items())},
              "frequency": dict(zip(stats["names"], stats["frequency"])),
              "train_images": dict(zip(stats["names"], stats["image_counts"]["train"])),
              "weights": str(best), "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "learnability.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"minutes={minutes:.2f} map50_frequent={means['frequent']:.4f} "
          f"map50_common={means['common']:.4f} map50_rare={means['rare']:.4f}")
    return result


if __name__ == "__main__":
    main()
