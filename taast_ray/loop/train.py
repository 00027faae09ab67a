"""A cycle's training stages (dataset, train, evaluate), the warm-up's too, and the scoring of a
model on a split that the cycles, the test stage and the experiment's curves share."""
from __future__ import annotations

import shutil
from pathlib import Path

from taast_ray.config import TaastConfig
from taast_ray.console import say
from taast_ray.data.split import merge_labels, subset_labels
from taast_ray.data.yolo import export_yolo
from taast_ray.io import read_json, write_json
from taast_ray.loop.layout import CycleLayout
from taast_ray.loop.rows import ROW_METRIC_KEYS, format_metric
from taast_ray.loop.sources import Dataset
from taast_ray.loop.stages import stage


def train_and_evaluate(cfg: TaastConfig, data: Dataset, l0_labels: Path, cycle: CycleLayout, labels: dict,
                       pseudo: dict | None, init_weights: str, epochs: int, resume: bool) -> None:
    """L ∪ Q ∪ P in the YOLO layout, fine-tuned on Ray Train from ``init_weights``, evaluated on
    the fixed val split (``l0_labels``: the groups of ``APr@L0``)."""
    def assemble():
        train_set = combine_training_set(labels, pseudo)
        write_json(cycle.train_set, train_set)
        shutil.rmtree(cycle.yolo, ignore_errors=True)
        # Ultralytics needs a val split; without one the training set stands in (never reported)
        export_yolo({"train": cycle.train_set, "val": data.val or cycle.train_set}, data.images, cycle.yolo,
                    train_set["categories"])

    def train():
        from taast_ray.training.trainer import fine_tune

        result = fine_tune(cfg.train, cycle.yolo / "dataset.yaml", init_weights, cycle.train, epochs=epochs,
                           seed=cfg.selection.seed, num_classes=len(labels["categories"]),
                           use_gpu=cfg.ray.use_gpu)
        shutil.copyfile(result["checkpoint"], cycle.weights)
        val = result["metrics"].get("metrics/mAP50(B)")
        say(f"{cycle.dir.name}: trained {epochs} epochs on {len(read_json(cycle.train_set)['images'])} "
            f"images with {cfg.train.workers} Ray Train workers" + (f", val mAP50 {val:.3f}" if val is not None else ""))

    def evaluate():
        metrics = evaluate_weights(cfg, cycle.weights, data.val, data.images, cycle.val_predictions,
                                   l0_labels, data.frequency_from)
        write_json(cycle.metrics, metrics)
        say(f"{cycle.dir.name}: " + "  ".join(f"{k} {format_metric(metrics.get(k))}"
                                              for k in ROW_METRIC_KEYS))

    say(f"{cycle.dir.name}: fine-tuning on {len(labels['images'])} labelled"
        + (f" + {len(pseudo['images'])} pseudo-labelled" if pseudo else "") + " images")
    stage(cycle.dir, "dataset", resume, assemble)
    stage(cycle.dir, "train", resume, train)
    if data.val is not None:
        stage(cycle.dir, "evaluate", resume, evaluate)


def evaluate_weights(cfg: TaastConfig, weights: Path, gt: Path, images: Path, predictions: Path,
                     l0_labels: Path | None = None, frequency_from: Path | None = None) -> dict:
    """LVIS/COCO metrics; with L0's labels also the groups counted on L0 (``APr@L0`` ...); with
    ``frequency_from`` APr/APc/APf on that training set's groups (tail.training_frequency)."""
    from taast_ray.evaluation.metrics import evaluate_detections, write_predictions
    from taast_ray.evaluation.predict import predict_split
    from taast_ray.evaluation.tail import l0_frequency, training_frequency

    write_predictions(predictions, predict_split(weights, gt, images, imgsz=cfg.train.imgsz,
                                                 device=cfg.model.device))
    l0 = l0_frequency(read_json(l0_labels)) if l0_labels is not None and l0_labels.exists() else None
    groups = training_frequency(read_json(frequency_from)) if frequency_from is not None else None
    return evaluate_detections(gt, predictions, l0_frequency=l0, frequency=groups)


def combine_training_set(labels: dict, pseudo: dict | None) -> dict:
    """T_train = L_new ∪ P (eq. 13); an image in both keeps its manual labels (no image in Q ∩ P)."""
    if not pseudo or not pseudo.get("images"):
        return labels
    manual = {img["id"] for img in labels["images"]}
    keep = [img["id"] for img in pseudo["images"] if img["id"] not in manual]
    extra = subset_labels(pseudo, keep)
    extra["annotations"] = [{k: v for k, v in a.items() if k != "score"} for a in extra["annotations"]]
    return merge_labels(labels, extra)
