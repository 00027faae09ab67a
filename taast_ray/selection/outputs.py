"""The selection's files (SPEC.md §3), each written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from taast_ray.data.labels import LabelSet
from taast_ray.io import child, write_json, write_parquet
from taast_ray.selection.pool import PoolScalars
from taast_ray.selection.scoring import ImageScores
from taast_ray.selection.strategies import Picks


def _nullable(values: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(values, mask=null)


def scores_table(det: PoolScalars, scored: ImageScores, picks: Picks, labels: LabelSet) -> pa.Table:
    has_class = scored.candidate_class >= 0
    category = np.where(has_class, labels.category_ids[np.maximum(scored.candidate_class, 0)], 0)
    weight = np.where(has_class, scored.weights[np.maximum(scored.candidate_class, 0)], 0.0)
    selected = np.zeros(det.num_images, bool)
    selected[picks.rows] = True
    by_id = np.empty(det.num_images, np.int64)  # a stable order whatever order the detections came in
    by_id[det.tie_rank] = np.arange(det.num_images)
    return pa.table({
        "image_id": det.image_ids,
        "entropy": pa.array(scored.entropy, pa.float64()),
        "candidate_class": _nullable(category.astype(np.int64), ~has_class),
        "weight": _nullable(weight, ~has_class),
        "score": _nullable(picks.score.astype(np.float64), ~np.isfinite(picks.score)),
        "pseudo": pa.array(scored.pseudo),
        "candidate": pa.array(picks.candidate),
        "cluster": _nullable(picks.cluster.astype(np.int64), picks.cluster < 0),
        "selected": pa.array(selected),
    }).take(pa.array(by_id))


def selection_table(det: PoolScalars, picks: Picks) -> pa.Table:
    rows = picks.rows
    score = picks.score[rows].astype(np.float64)
    cluster = picks.cluster[rows]
    columns = {
        "image_id": pa.array(det.ids(rows), pa.string()),
        "rank": pa.array(np.arange(len(rows), dtype=np.int64)),
        "score": _nullable(score, ~np.isfinite(score)),
        "cluster": _nullable(cluster.astype(np.int64), cluster < 0),
        "fill": pa.array(picks.fill),
    }
    if det.has_uri:
        columns["uri"] = pa.array(det.uris(rows), pa.string())
    return pa.table(columns)


def pseudo_labels_coco(det: PoolScalars, scored: ImageScores, labels: LabelSet) -> dict:
    """P as COCO detections: one image per pseudo-labelled image, its boxes with their argmax class."""
    rows = np.flatnonzero(scored.pseudo)
    rows = rows[np.argsort(det.tie_rank[rows], kind="stable")]
    p = det.box_rows(rows)
    numeric = all(str(i).isdigit() for i in p.image_ids)
    images, annotations = [], []
    for n, name in enumerate(p.image_ids):
        image_id = int(name) if numeric else n + 1
        image = {"id": image_id, "file_name": str(p.uri[n] if p.uri is not None else name),
                 "taast_image_id": str(name)}
        if p.width is not None:
            image.update(width=int(p.width[n]), height=int(p.height[n]))
        images.append(image)
        lo, hi = p.offsets[n], p.offsets[n + 1]
        for box, k, conf in zip(p.boxes[lo:hi], p.box_class[lo:hi], p.box_conf[lo:hi]):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(labels.category_ids[k]),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": 0, "score": float(conf)})
    categories = [{k: v for k, v in c.items() if k in ("id", "name", "frequency", "supercategory")}
                  for c in labels.categories]
    return {"info": {"description": "taast-ray pseudo labels (eq. 1)"}, "images": images,
            "annotations": annotations, "categories": categories}


def label_studio_tasks(det: PoolScalars, scored: ImageScores, picks: Picks, labels: LabelSet) -> list:
    """One Label Studio task per selected image, the detector's boxes as pre-annotations."""
    names = labels.category_names
    chosen = det.box_rows(picks.rows)
    tasks = []
    for rank, (row, fill) in enumerate(zip(picks.rows, picks.fill)):
        k = int(scored.candidate_class[row])
        name = chosen.image_ids[rank]
        data = {"image": str(chosen.uri[rank]) if chosen.uri is not None else str(name),
                "image_id": str(name), "rank": rank, "fill": bool(fill),
                "score": float(picks.score[row]) if np.isfinite(picks.score[row]) else None,
                "candidate_class": names[k] if k >= 0 else None,
                "candidate_category_id": int(labels.category_ids[k]) if k >= 0 else None}
        task = {"data": data}
        if chosen.width is not None and chosen.height is not None:
            task["predictions"] = [{"model_version": "taast-ray", "result": _ls_boxes(chosen, rank, names)}]
        tasks.append(task)
    return tasks


def _ls_boxes(chosen, n: int, names: list[str]) -> list:
    lo, hi = chosen.offsets[n], chosen.offsets[n + 1]
    width, height = float(chosen.width[n]), float(chosen.height[n])
    result = []
    for box, k, conf in zip(chosen.boxes[lo:hi], chosen.box_class[lo:hi], chosen.box_conf[lo:hi]):
        x1, y1, x2, y2 = (float(v) for v in box)
        result.append({"from_name": "label", "to_name": "image", "type": "rectanglelabels",
                       "original_width": int(width), "original_height": int(height),
                       "score": float(conf),
                       "value": {"x": 100 * x1 / width, "y": 100 * y1 / height,
                                 "width": 100 * (x2 - x1) / width, "height": 100 * (y2 - y1) / height,
                                 "rectanglelabels": [names[int(k)]]}})
    return result


def write_selection_outputs(out: Path | str, det: PoolScalars, scored: ImageScores, picks: Picks,
                            labels: LabelSet, summary: dict) -> None:
    """Every file atomically; summary.json last, so its presence means the set is whole."""
    write_parquet(child(out, "scores.parquet"), scores_table(det, scored, picks, labels))
    write_parquet(child(out, "selection.parquet"), selection_table(det, picks))
    write_json(child(out, "pseudo_labels.json"), pseudo_labels_coco(det, scored, labels))
    write_json(child(out, "label_studio_tasks.json"), label_studio_tasks(det, scored, picks, labels))
    write_json(child(out, "summary.json"), summary)
