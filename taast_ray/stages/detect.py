"""Detector stage: compressed bytes in, the detections contract (SPEC.md §3) out, per image.

A Ray Data actor (one model per worker, loaded in ``__init__``); the class also runs in a plain
loop, which is how the benchmark's in-process baseline and the GPU measurements call it.
Undecodable records come out with ``error`` set and no boxes; they never stop the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from taast_ray.stages.base import DecodingStage
from taast_ray.stages.decode import MAX_PIXELS

_F32_ROWS = pa.list_(pa.list_(pa.float32()))
DETECTIONS_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("uri", pa.string()), ("boxes", _F32_ROWS), ("scores", _F32_ROWS),
    ("width", pa.int32()), ("height", pa.int32()), ("error", pa.string()), ("converted", pa.string()),
])


@dataclass
class DetectResources:
    """What one detector actor asks Ray for; the pool size is configuration."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0


class DetectStage(DecodingStage):
    def __init__(self, weights: str, *, imgsz: int, conf: float, num_classes: int | None,
                 device: str = "auto", max_pixels: int = MAX_PIXELS):
        from taast_ray.models.detector import Detector

        super().__init__(max_pixels)
        self.detector = Detector(weights, imgsz=imgsz, conf=conf, device=device, num_classes=num_classes)

    def __call__(self, batch: pa.Table | dict) -> pa.Table:
        decoded, ok = self.decode(batch)
        images = decoded["image"]
        results = dict(zip(ok, self.detector.predict([images[i] for i in ok])))
        width = self.detector.num_classes
        empty = (np.zeros((0, 4), np.float32), np.zeros((0, width), np.float32))
        boxes = [results.get(i, empty)[0].tolist() for i in range(len(images))]
        scores = [results.get(i, empty)[1].tolist() for i in range(len(images))]
        n = len(images)
        return pa.Table.from_pydict({
            "image_id": [str(v) for v in decoded["image_id"]],
            "uri": list(decoded.get("uri", [None] * n)),
            "boxes": boxes, "scores": scores,
            "width": np.asarray(decoded["width"], np.int32), "height": np.asarray(decoded["height"], np.int32),
            "error": list(decoded["error"]), "converted": list(decoded.get("converted", [None] * n)),
        }, schema=DETECTIONS_SCHEMA)
