"""What every frozen image tower shares: the precision setting, autocast on CUDA, unit-norm rows.

A tower (CLIP's in :mod:`taast_ray.models.embedder`, ImageNet MobileNetV2's in
:mod:`taast_ray.models.mobilenet`) sets ``device``, ``dim`` and ``visual`` and implements
``_features(x)`` on a batch of uint8 NCHW tensors already on its device; ``embed`` does the rest.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from taast_ray.embedder_names import PRECISIONS
from taast_ray.errors import ConfigError
from taast_ray.models.letterbox import as_image_tensors
from taast_ray.models.transfer import to_host

DTYPES = {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}  # PRECISIONS


def autocast_dtype(precision: str) -> torch.dtype | None:
    """``model.embedder_precision`` → the CUDA autocast dtype (None: float32)."""
    if precision not in DTYPES:
        raise ConfigError(f"model.embedder_precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    return DTYPES[precision]


class FrozenTower:
    """Base of the image towers. ``precision`` applies on CUDA only; the CPU runs float32."""

    device: torch.device
    dim: int
    _dtype: torch.dtype | None = None

    def _autocast(self):
        if self.device.type != "cuda" or self._dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self._dtype)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def embed(self, images: list) -> np.ndarray:
        """RGB uint8 HxWx3 images (arrays, or tensors on any device) -> (n, dim) float32 unit rows."""
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        with self._autocast():
            features = self._features(as_image_tensors(images, self.device))
        return to_host(F.normalize(features.float(), dim=-1))[0]
