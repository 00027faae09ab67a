"""Detector stage: compressed bytes in, the detections contract (SPEC.md §3) out, per image.

A Ray Data actor (one model per worker, loaded in ``__init__``); the class also runs in a plain
loop, which is how the benchmarks' in-process baselines and the GPU measurements call it.
Undecodable records come out with ``error`` set and no boxes; they never stop the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from taast_ray.models.detector import BoxRows, Detector
from taast_ray.stages.base import DecodingStage
from taast_ray.stages.decode import MAX_PIXELS
from taast_ray.stages.device import granted_device
from taast_ray.stages.tensor_decode import DecodedBatch

_F32_ROWS = pa.list_(pa.list_(pa.float32()))
DETECTIONS_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("uri", pa.string()), ("boxes", _F32_ROWS), ("scores", _F32_ROWS),
    ("width", pa.int32()), ("height", pa.int32()), ("error", pa.string()), ("error_stage", pa.string()),
    ("converted", pa.string()),
])


@dataclass
class DetectResources:
    """What one detector actor asks Ray for; the pool size is configuration."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0


class DetectStage(DecodingStage):
    def __init__(self, weights: str, *, imgsz: int, conf: float, num_classes: int | None,
                 device: str = "auto", max_pixels: int = MAX_PIXELS):
        self.detector = Detector(weights, imgsz=imgsz, conf=conf, device=granted_device(device),
                                 num_classes=num_classes)
        super().__init__(self.detector.device, max_pixels)

    def __call__(self, batch: pa.Table | dict) -> pa.Table:
        decoded = self.decode(batch)
        rows = self.detector.predict_rows([decoded.images[i] for i in decoded.ok])
        return detections_table(decoded, rows)


def detections_table(decoded: DecodedBatch, rows: BoxRows) -> pa.Table:
    """The batch as the detections contract, built from flat arrays: no Python object per box.

    ``rows`` holds the boxes of the decoded rows (``decoded.ok``), in that order.
    """
    counts = np.zeros(len(decoded.images), np.int64)
    counts[decoded.ok] = np.diff(rows.offsets)
    per_image = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    n = len(decoded.image_id)
    return pa.table({
        "image_id": pa.array([str(v) for v in decoded.image_id], pa.string()),
        "uri": pa.array(decoded.uri if decoded.uri is not None else [None] * n, pa.string()),
        "boxes": pa.ListArray.from_arrays(per_image, _rows(rows.boxes)),
        "scores": pa.ListArray.from_arrays(per_image, _rows(rows.scores)),
        "width": decoded.width, "height": decoded.height,
        "error": pa.array(decoded.error, pa.string()), "error_stage": pa.array(decoded.error_stage, pa.string()),
        "converted": pa.array(decoded.converted, pa.string()),
    }, schema=DETECTIONS_SCHEMA)


def _rows(matrix: np.ndarray) -> pa.ListArray:
    """A (m, w) float32 matrix as m list<float32> rows over one flat buffer."""
    m, w = matrix.shape
    starts = pa.array(np.arange(0, m * w + 1, w, dtype=np.int32))
    return pa.ListArray.from_arrays(starts, pa.array(np.ascontiguousarray(matrix, np.float32).reshape(-1)))
