"""What the model stages share: decode a batch's compressed bytes once, onto the model's device
(or take the pixels CPU decode tasks made)."""
from __future__ import annotations

import pyarrow as pa
import torch

from taast_ray.stages.decode import MAX_PIXELS
from taast_ray.stages.stage import Stage
from taast_ray.stages.tensor_decode import DecodedBatch, decode_to_tensors, pixels_to_decoded


class DecodingStage(Stage):
    """Subclasses load their model in :meth:`~Stage.setup`, set ``device`` to the model's there,
    and call :meth:`decode` in :meth:`~Stage.process`."""

    device: torch.device
    max_pixels: int = MAX_PIXELS

    def decode(self, batch: pa.Table | dict) -> DecodedBatch:
        """Images as tensors on the device; a failed row keeps its reason and no image. A batch
        that CPU decode tasks already decoded (``ray.decode: tasks``) carries ``pixels`` instead."""
        columns = batch.to_pydict() if isinstance(batch, pa.Table) else dict(batch)
        if "pixels" in columns:
            return pixels_to_decoded(columns, self.device)
        return decode_to_tensors(columns, self.device, max_pixels=self.max_pixels)
