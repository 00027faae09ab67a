"""What the model stages share: decode a batch's compressed bytes, keep the good images."""
from __future__ import annotations

import pyarrow as pa

from taast_ray.stages.decode import MAX_PIXELS, decode_batch


class DecodingStage:
    """Subclasses load their model in ``__init__`` and call :meth:`decode` in ``__call__``."""

    def __init__(self, max_pixels: int = MAX_PIXELS):
        self.max_pixels = max_pixels

    def decode(self, batch: pa.Table | dict) -> tuple[dict, list[int]]:
        """(decode_batch's columns, rows whose image decoded): failures keep their reason."""
        columns = batch.to_pydict() if isinstance(batch, pa.Table) else dict(batch)
        decoded = decode_batch(columns, max_pixels=self.max_pixels)
        return decoded, [i for i, image in enumerate(decoded["image"]) if image is not None]
