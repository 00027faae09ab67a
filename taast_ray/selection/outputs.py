"""The selection's files (SPEC.md §3), published together as one output set."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from taast_ray.config import save_with_versions
from taast_ray.data.labels import LabelSet
from taast_ray.io import publish_output_set, write_json, write_parquet
from taast_ray.selection.detections import FlatDetections
from taast_ray.selection.scoring import ImageScores
from taast_ray.selection.strategies import Picks


def _nullable(values: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(values, mask=null)


def scores_table(det: FlatDetections, scored: ImageScores, picks: Picks, labels: LabelSet) -> pa.Table:
    has_class = scored.candidate_class >= 0
    category = np.where(has_class, labels.category_ids[np.maximum(scored.candidate_class, 0)], 0)
    weight = np.where(has_class, scored.weights[np.maximum(scored.candidate_class, 0)], 0.0)
    selected = np.zeros(det.num_images, bool)
    selected[picks.rows] = True
    return pa.table({
        "image_id": pa.array(det.image_ids, pa.string()),
        "entropy": pa.array(scored.entropy, pa.float64()),
        "candidate_class": _nullable(category.astype(np.int64), ~has_class),
        "weight": _nullable(weight, ~has_class),
        "score": _nullable(picks.score.astype(np.float64), ~np.isfinite(picks.score)),
        "pseudo": pa.array(scored.pseudo),
        "candidate": pa.array(picks.candidate),
        "cluster": _nullable(picks.cluster.astype(np.int64), picks.cluster < 0),
        "selected": pa.array(selected),
    }).sort_by("image_id")  # a stable order whatever order the detections arrived in


def selection_table(det: FlatDetections, picks: Picks) -> pa.Table:
    rows = picks.rows
    score = picks.score[rows].astype(np.float64)
    cluster = picks.cluster[rows]
    columns = {
        "image_id": pa.array(det.image_ids[rows], pa.string()),
        "rank": pa.array(np.arange(len(rows), dtype=np.int64)),
        "score": _nullable(score, ~np.isfinite(score)),
        "cluster": _nullable(cluster.astype(np.int64), cluster < 0),
        "fill": pa.array(picks.fill),
    }
    if det.uri is not None:
        columns["uri"] = pa.array(det.uri[rows], pa.string())
    return pa.table(columns)


def pseudo_labels_coco(det: FlatDetections, scored: ImageScores, labels: LabelSet) -> dict:
    """P as COCO detections: one image per pseudo-labelled image, its boxes with their argmax class."""
    rows = np.flatnonzero(scored.pseudo)
    rows = rows[np.argsort(det.image_ids[rows].astype(str), kind="stable")]
    numeric = all(str(i).isdigit() for i in det.image_ids[rows])
    images, annotations = [], []
    for n, row in enumerate(rows):
        image_id = int(det.image_ids[row]) if numeric else n + 1
        image = {"id": image_id, "file_name": str(det.uri[row] if det.uri is not None else det.image_ids[row]),
                 "taast_image_id": str(det.image_ids[row])}
        if det.width is not None:
            image.update(width=int(det.width[row]), height=int(det.height[row]))
        images.append(image)
        lo, hi = det.offsets[row], det.offsets[row + 1]
        classes = np.argmax(det.scores[lo:hi], axis=1)
        for box, k, conf in zip(det.boxes[lo:hi], classes, scored.confidence[lo:hi]):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(labels.category_ids[k]),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": 0, "score": float(conf)})
    categories = [{k: v for k, v in c.items() if k in ("id", "name", "frequency", "supercategory")}
                  for c in labels.categories]
    return {"info": {"description": "taast-ray pseudo labels (eq. 1)"}, "images": images,
            "annotations": annotations, "categories": categories}


def label_studio_tasks(det: FlatDetections, scored: ImageScores, picks: Picks, labels: LabelSet) -> list:
    """One Label Studio task per selected image, the detector's boxes as pre-annotations."""
    names = labels.category_names
    tasks = []
    for rank, (row, fill) in enumerate(zip(picks.rows, picks.fill)):
        k = int(scored.candidate_class[row])
        data = {"image": str(det.uri[row]) if det.uri is not None else str(det.image_ids[row]),
                "image_id": str(det.image_ids[row]), "rank": rank, "fill": bool(fill),
                "score": float(picks.score[row]) if np.isfinite(picks.score[row]) else None,
                "candidate_class": names[k] if k >= 0 else None,
                "candidate_category_id": int(labels.category_ids[k]) if k >= 0 else None}
        task = {"data": data}
        if det.width is not None and det.height is not None:
            task["predictions"] = [{"model_version": "taast-ray", "result": _ls_boxes(det, row, names)}]
        tasks.append(task)
    return tasks


def _ls_boxes(det: FlatDetections, row: int, names: list[str]) -> list:
    lo, hi = det.offsets[row], det.offsets[row + 1]
    width, height = float(det.width[row]), float(det.height[row])
    result = []
    for box, scores in zip(det.boxes[lo:hi], det.scores[lo:hi]):
        x1, y1, x2, y2 = (float(v) for v in box)
        result.append({"from_name": "label", "to_name": "image", "type": "rectanglelabels",
                       "original_width": int(width), "original_height": int(height),
                       "score": float(scores.max()),
                       "value": {"x": 100 * x1 / width, "y": 100 * y1 / height,
                                 "width": 100 * (x2 - x1) / width, "height": 100 * (y2 - y1) / height,
                                 "rectanglelabels": [names[int(np.argmax(scores))]]}})
    return result


SET_FILES = ("scores.parquet", "selection.parquet", "pseudo_labels.json", "label_studio_tasks.json",
             "errors.parquet", "summary.json", "config.yaml")


def write_selection_outputs(out: Path | str, det: FlatDetections, scored: ImageScores, picks: Picks,
                            labels: LabelSet, summary: dict, errors: pa.Table | None = None) -> None:
    """The whole set, published at once (``io.publish_output_set``): the previous set or this one,
    never a mix. ``config.yaml`` is the summary's configuration with the software versions."""
    writers = {
        "scores.parquet": lambda p: write_parquet(p, scores_table(det, scored, picks, labels)),
        "selection.parquet": lambda p: write_parquet(p, selection_table(det, picks)),
        "pseudo_labels.json": lambda p: write_json(p, pseudo_labels_coco(det, scored, labels)),
        "label_studio_tasks.json": lambda p: write_json(p, label_studio_tasks(det, scored, picks, labels)),
    }
    if errors is not None:
        writers["errors.parquet"] = lambda p: write_parquet(p, errors)
    writers["summary.json"] = lambda p: write_json(p, summary)
    writers["config.yaml"] = lambda p: save_with_versions(summary["config"], p)
    publish_output_set(out, writers, replaces=SET_FILES)


def write_failed_outputs(out: Path | str, errors: pa.Table, summary: dict) -> None:
    """A pass that could select nothing (every image unreadable, fewer readable images than the
    budget) still publishes what it learnt: errors.parquet, the summary (``status`` "failed" and
    the reason) and the configuration; any previous selection files are removed with it."""
    publish_output_set(out, {"errors.parquet": lambda p: write_parquet(p, errors),
                             "summary.json": lambda p: write_json(p, summary),
                             "config.yaml": lambda p: save_with_versions(summary["config"], p)},
                       replaces=SET_FILES)
