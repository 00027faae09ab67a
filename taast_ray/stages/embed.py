"""Embedder stage: compressed bytes of candidates in, L2-normalised CLIP rows out (eq. 9)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from taast_ray.stages.base import DecodingStage
from taast_ray.stages.decode import MAX_PIXELS


class EmbedStage(DecodingStage):
    """Ray Data actor around :class:`taast_ray.models.embedder.Embedder` (frozen image tower)."""

    def __init__(self, model_name: str, weights: str, *, device: str = "auto",
                 image_size: int | None = None, max_pixels: int = MAX_PIXELS):
        from taast_ray.models.embedder import Embedder

        super().__init__(max_pixels)
        self.embedder = Embedder(model_name, weights, device=device, image_size=image_size)

    def __call__(self, batch: pa.Table | dict) -> pa.Table:
        decoded, ok = self.decode(batch)
        images = decoded["image"]
        matrix = np.zeros((len(images), self.embedder.dim), np.float32)
        if ok:
            matrix[ok] = self.embedder.embed([images[i] for i in ok])
        values = pa.array(matrix.reshape(-1), pa.float32())
        return pa.table({
            "image_id": pa.array([str(v) for v in decoded["image_id"]], pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(values, self.embedder.dim),
            "error": pa.array(list(decoded["error"]), pa.string()),
        })
