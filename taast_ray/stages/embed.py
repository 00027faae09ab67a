"""Embedder stage: compressed bytes of candidates in, L2-normalised rows out (eq. 9).

The tower is whichever ``model.embedder`` names (:func:`taast_ray.models.embedder.make_embedder`):
an open_clip image tower or the packaged ImageNet MobileNetV2.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from taast_ray.stages.base import DecodingStage
from taast_ray.stages.decode import MAX_PIXELS
from taast_ray.stages.device import granted_device
from taast_ray.stages.stage import StageResources


class EmbedStage(DecodingStage):
    """Ray Data actor around a frozen image tower (:func:`taast_ray.models.embedder.make_embedder`)."""

    name = "embed"

    def __init__(self, model_name: str, weights: str, *, device: str = "auto",
                 image_size: int | None = None, precision: str = "auto", max_pixels: int = MAX_PIXELS):
        self.embedder_args = {"model_name": model_name, "weights": weights, "image_size": image_size,
                              "precision": precision}
        self.requested_device, self.max_pixels = device, max_pixels

    @classmethod
    def resources(cls, gpu: bool) -> StageResources:
        """A whole GPU per embedder actor when the cluster has GPUs, else one CPU: declared apart
        from the detector's, so either can change (a smaller tower sharing a GPU) alone."""
        return StageResources(cpus=1.0, gpus=1.0 if gpu else 0.0)

    def setup(self) -> None:
        from taast_ray.models.embedder import make_embedder

        self.embedder = make_embedder(**self.embedder_args, device=granted_device(self.requested_device))
        self.device = self.embedder.device

    def process(self, batch: pa.Table | dict) -> pa.Table:
        decoded = self.decode(batch)
        matrix = np.zeros((len(decoded.images), self.embedder.dim), np.float32)
        if decoded.ok:
            matrix[decoded.ok] = self.embedder.embed([decoded.images[i] for i in decoded.ok])
        values = pa.array(matrix.reshape(-1), pa.float32())
        return pa.table({
            "image_id": pa.array([str(v) for v in decoded.image_id], pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(values, self.embedder.dim),
            "error": pa.array(decoded.error, pa.string()),
        })
