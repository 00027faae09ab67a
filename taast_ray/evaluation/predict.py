"""Predictions of a detector on a labelled split, as the COCO results list the metrics read."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

EVAL_CONF = 0.001  # the usual COCO/LVIS evaluation threshold: rank everything, let AP decide


def predict_split(weights: str | Path, gt_json: str | Path, image_root: str | Path, *, imgsz: int,
                  batch: int = 16, device: str = "auto") -> list[dict]:
    """One row per kept box: image_id, category_id (argmax class), bbox xywh, score (its max)."""
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
            classes, conf = scores.argmax(axis=1), scores.max(axis=1)
            for (x1, y1, x2, y2), k, s in zip(boxes.tolist(), classes.tolist(), conf.tolist()):
                rows.append({"image_id": img["id"], "category_id": category_ids[k],
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    return rows
