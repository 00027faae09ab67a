"""Fine-tuning through Ray Train: 2 CPU workers, one short epoch, on a tiny synthetic set."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import taast_ray  # noqa: F401  (offline switches before Ultralytics)
from taast_ray.config import TrainConfig
from taast_ray.errors import ConfigError
from taast_ray.training.trainer import fine_tune

COLOURS = [(220, 30, 30), (30, 190, 40), (35, 60, 235)]
N_TRAIN, N_VAL, SIZE = 16, 4, 64  # 16 = 2 workers × global batch 8: no sampler padding


def _tiny_yolo_set(root):
    """One coloured rectangle per image, its class the colour; the YOLO layout + dataset.yaml."""
    rng = np.random.default_rng(0)
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            cls = i % len(COLOURS)
            img = np.full((SIZE, SIZE, 3), 128, np.uint8)
            w, h = rng.integers(16, 40, size=2)
            x, y = rng.integers(0, SIZE - w), rng.integers(0, SIZE - h)
            img[y:y + h, x:x + w] = COLOURS[cls]
            Image.fromarray(img).save(root / "images" / split / f"{split}{i:03d}.jpg")
            box = ((x + w / 2) / SIZE, (y + h / 2) / SIZE, w / SIZE, h / SIZE)
            (root / "labels" / split / f"{split}{i:03d}.txt").write_text(
                f"{cls} " + " ".join(f"{v:.6f}" for v in box) + "\n")
    names = "\n".join(f"  {k}: c{k}" for k in range(len(COLOURS)))
    yaml = root / "dataset.yaml"
    yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return yaml


@pytest.mark.slow
def test_fine_tune_two_workers_disjoint_shards_and_reloadable(tmp_path, ray_local):
    from ultralytics import YOLO

    data = _tiny_yolo_set(tmp_path / "data")
    out = fine_tune(TrainConfig(imgsz=SIZE, batch=8, workers=2), data, "yolov8n.yaml", tmp_path / "ft",
                    epochs=1, use_gpu="false", num_classes=len(COLOURS), seed=0)

    assert out["workers"] == 2 and out["metrics"]["epoch"] == 1
    seen = [set(json.loads((tmp_path / "ft" / f"seen_rank{r}.json").read_text())["epochs"]["0"])
            for r in (0, 1)]
    assert seen[0] and seen[1] and not seen[0] & seen[1], "ranks must see disjoint shards"
    train = {str(p) for p in (tmp_path / "data" / "images" / "train").iterdir()}
    assert seen[0] | seen[1] == train
    assert sorted(s["rank"] for s in out["seen"]) == [0, 1]
    assert all(s["images"] == N_TRAIN // 2 and s["ddp"] for s in out["seen"])
    # no train.cpus_per_worker: Ultralytics' own thread count, min(8, cores − 1)
    assert all(s["threads"] == min(8, max(1, (os.cpu_count() or 1) - 1)) for s in out["seen"])
    # reported through Ray Train: its persisted checkpoint holds Ultralytics' weights
    assert (Path(out["ray_checkpoint"]) / "last.pt").is_file()

    model = YOLO(out["checkpoint"])  # reloads: the reported checkpoint, optimizer stripped
    assert len(model.names) == len(COLOURS)
    pred = model.predict(str(tmp_path / "data" / "images" / "val" / "val000.jpg"), imgsz=SIZE,
                         device="cpu", verbose=False)
    assert len(pred) == 1


@pytest.mark.slow
def test_one_worker_holding_two_cpus_trains_with_two_torch_threads(tmp_path, ray_local):
    """train.cpus_per_worker: the worker holds that many CPUs and trains with that many threads
    (Ultralytics alone would set min(8, cores − 1), which is 1 on this 2-core machine)."""
    data = _tiny_yolo_set(tmp_path / "data")
    two = fine_tune(TrainConfig(imgsz=SIZE, batch=8, workers=1, cpus_per_worker=2), data, "yolov8n.yaml",
                    tmp_path / "two", epochs=1, use_gpu="false", num_classes=len(COLOURS), seed=0)
    assert [s["threads"] for s in two["seen"]] == [2]


def test_bad_inputs_fail_on_the_driver(tmp_path):
    data = _tiny_yolo_set(tmp_path / "data")
    with pytest.raises(ConfigError, match="weights"):
        fine_tune(TrainConfig(imgsz=64, batch=8), data, tmp_path / "missing.pt", tmp_path / "ft", epochs=1)
    with pytest.raises(ConfigError, match="num_classes"):
        fine_tune(TrainConfig(imgsz=64, batch=8), data, "yolov8n.yaml", tmp_path / "ft", epochs=1,
                  num_classes=5)
    with pytest.raises(ConfigError, match="dataset_yaml"):
        fine_tune(TrainConfig(imgsz=64, batch=8), tmp_path / "no.yaml", "yolov8n.yaml", tmp_path / "ft",
                  epochs=1)


def test_rank_constants_patched_where_ultralytics_copied_them():
    """A pooled Ray process may have imported Ultralytics with RANK = -1 baked into its modules."""
    import ultralytics.data.build as build
    import ultralytics.engine.trainer as engine
    import ultralytics.utils as utils

    from taast_ray.training.trainer import _ultralytics_ranks

    before = (utils.RANK, engine.LOCAL_RANK, build.RANK)
    with _ultralytics_ranks(1, 1, 2):
        assert (utils.RANK, utils.WORLD_SIZE, engine.RANK, engine.LOCAL_RANK, build.RANK) == (
            1, 2, 1, 1, 1)
    assert (utils.RANK, engine.LOCAL_RANK, build.RANK) == before
