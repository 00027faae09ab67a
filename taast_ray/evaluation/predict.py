"""Predictions of a detector on a labelled split, as the COCO results list the metrics read."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

EVAL_CONF = 0.001  # the usual COCO/LVIS evaluation threshold: rank everything, let AP decide
MAX_DETS = 300     # per image, LVIS's limit (LVISResults keeps the 300 best anyway)


def result_rows(image_id, boxes: np.ndarray, scores: np.ndarray, category_ids: list[int], *,
                min_score: float = EVAL_CONF, max_dets: int = MAX_DETS) -> list[dict]:
    """One row per (kept box, class) whose score reaches ``min_score``, the best ``max_dets``.

    Multi-label, as Ultralytics' own validator scores YOLOv8 (``multi_label=True``): the class
    scores are independent sigmoids, so a box's second class is a detection of its own. Keeping
    only each box's top class would leave a class that never wins the argmax (a rare one)
    without a single ranked prediction, and its AP at 0 whatever the model knows of it."""
    box_idx, cls_idx = np.nonzero(scores >= min_score)
    values = scores[box_idx, cls_idx]
    order = np.lexsort((cls_idx, box_idx, -values))[:max_dets]  # best first; ties: box, class
    rows = []
    for i in order:
        x1, y1, x2, y2 = boxes[box_idx[i]].tolist()
        rows.append({"image_id": image_id, "category_id": category_ids[int(cls_idx[i])],
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(values[i])})
    return rows


def predict_split(weights: str | Path, gt_json: str | Path, image_root: str | Path, *, imgsz: int,
                  batch: int = 16, device: str = "auto") -> list[dict]:
    """Rows of :func:`result_rows` for every image of the split: image_id, category_id, bbox
    xywh, score."""
    from taast_ray.models.detector import Detector

    gt = json.loads(Path(gt_json).read_text())
    category_ids = [c["id"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    detector = Detector(str(weights), imgsz=imgsz, conf=EVAL_CONF, device=device,
                        num_classes=len(category_ids))
    root = Path(image_root)
    rows: list[dict] = []
    images = gt["images"]
    for lo in range(0, len(images), batch):
        chunk = images[lo:lo + batch]
        arrays = [np.asarray(Image.open(root / img["file_name"]).convert("RGB")) for img in chunk]
        for img, (boxes, scores) in zip(chunk, detector.predict(arrays)):
            rows.extend(result_rows(img["id"], boxes, scores, category_ids))
    return rows
