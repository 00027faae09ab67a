"""What the model stages share: decode a batch's compressed bytes once, onto the model's device."""
from __future__ import annotations

import pyarrow as pa
import torch

from taast_ray.stages.decode import MAX_PIXELS
from taast_ray.stages.tensor_decode import DecodedBatch, decode_to_tensors


class DecodingStage:
    """Subclasses load their model in ``__init__`` and call :meth:`decode` in ``__call__``."""

    def __init__(self, device: torch.device, max_pixels: int = MAX_PIXELS):
        self.device, self.max_pixels = device, max_pixels

    def decode(self, batch: pa.Table | dict) -> DecodedBatch:
        """Images as tensors on the device; a failed row keeps its reason and no image."""
        columns = batch.to_pydict() if isinstance(batch, pa.Table) else dict(batch)
        return decode_to_tensors(columns, self.device, max_pixels=self.max_pixels)
