"""``taast demo``: the README's main job on one machine, small enough for a 2-core laptop."""
from __future__ import annotations

import time
from pathlib import Path

from taast_ray.config import TaastConfig, save_config

DEMO_IMAGES = 1500
DEMO_CLASSES = 12
DEMO_SEED = 0


def run_demo(cfg: TaastConfig, out: Path) -> int:
    from taast_ray.data.synth import format_class_table, make_synthetic_dataset

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    print(f"[1/1] synthetic long-tailed dataset: {DEMO_IMAGES} images, {DEMO_CLASSES} classes -> {out}/data")
    stats = make_synthetic_dataset(out / "data", images=DEMO_IMAGES, classes=DEMO_CLASSES, seed=DEMO_SEED)
    print(format_class_table(stats))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
