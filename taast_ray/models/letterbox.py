"""Batched torch pre-processing shared by the detector and embedder (CPU and GPU alike).

Images arrive as RGB uint8 HxWx3 numpy arrays or torch tensors (a GPU decoder hands over tensors).
Resizing is done per group of same-sized images, so a batch of 1280x720 frames is one kernel call.
The letterbox geometry mirrors ``ultralytics.data.augment.LetterBox`` (square, centred, pad 114,
the same rounding) and ``ultralytics.utils.ops.scale_boxes``, so boxes map back exactly as
Ultralytics maps them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2.functional import InterpolationMode, resize_image

from taast_ray.errors import ConfigError
from taast_ray.models.transfer import host_to_device

PAD_VALUE = 114  # Ultralytics' letterbox grey


def resolve_device(device: str, field: str = "model.device") -> torch.device:
    """'auto' picks CUDA when present; anything else must be a torch device string."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"{field}: {device!r} is not a device ({e})") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{field}: {device!r} requested but CUDA is not available")
    return dev


def as_image_tensors(images, device: torch.device) -> list[torch.Tensor]:
    """Check each image is RGB uint8 HxWx3 and move it to ``device`` as a tensor."""
    out = []
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            # Ray/Arrow batches are often read-only; torch warns on those, so copy just them
            im = np.ascontiguousarray(im) if im.flags.writeable else np.array(im)
        t = torch.from_numpy(im) if isinstance(im, np.ndarray) else im
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.ndim != 3 or t.shape[2] != 3:
            desc = f"{getattr(im, 'dtype', type(im).__name__)} {tuple(getattr(im, 'shape', ()))}"
            raise ValueError(f"image {i}: expected an RGB uint8 HxWx3 array, got {desc}")
        if min(t.shape[:2]) < 1:
            raise ValueError(f"image {i}: empty image of shape {tuple(t.shape)}")
        out.append(host_to_device(t, device))
    return out


def group_by_shape(images: list[torch.Tensor]) -> dict[tuple[int, int], list[int]]:
    """Indices of images sharing (h, w), so each group is resized in one call."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault((int(im.shape[0]), int(im.shape[1])), []).append(i)
    return groups


@dataclass(frozen=True)
class Letterbox:
    """Where an h x w image lands inside the size x size model input."""

    h: int
    w: int
    new_h: int
    new_w: int
    top: int
    left: int

    @property
    def gain_x(self) -> float:  # per axis: each side is rounded separately, as Ultralytics does
        return self.new_w / self.w

    @property
    def gain_y(self) -> float:
        return self.new_h / self.h


def letterbox_geometry(h: int, w: int, size: int) -> Letterbox:
    """Pure arithmetic of LetterBox(new_shape=size, auto=False, center=True, scaleup=True)."""
    r = min(size / h, size / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)  # thin images keep >= 1 pixel
    top, left = round((size - new_h) / 2 - 0.1), round((size - new_w) / 2 - 0.1)
    return Letterbox(h, w, new_h, new_w, top, left)


def letterbox_batch(images: list[torch.Tensor], size: int) -> tuple[torch.Tensor, list[Letterbox]]:
    """uint8 HxWx3 tensors on one device -> float (B, 3, size, size) in [0, 1], plus geometry."""
    geoms = [letterbox_geometry(int(im.shape[0]), int(im.shape[1]), size) for im in images]
    canvas = torch.full((len(images), 3, size, size), PAD_VALUE, dtype=torch.uint8, device=images[0].device)
    for idx in group_by_shape(images).values():
        g = geoms[idx[0]]
        x = torch.stack([images[i] for i in idx]).permute(0, 3, 1, 2)
        if (g.new_h, g.new_w) != (g.h, g.w):
            # uint8 in and out, no antialias: the same bilinear that cv2.INTER_LINEAR computes
            x = resize_image(x, [g.new_h, g.new_w], InterpolationMode.BILINEAR, antialias=False)
        canvas[idx, :, g.top:g.top + g.new_h, g.left:g.left + g.new_w] = x
    return canvas.float().div_(255), geoms


def boxes_to_original(boxes: torch.Tensor, geoms: list[Letterbox], image: torch.Tensor) -> torch.Tensor:
    """xyxy boxes in model-input pixels -> original-image pixels, clipped to the image;
    ``image[j]`` is the index in ``geoms`` of the image box j came from."""
    table = torch.tensor([[g.left, g.top, g.gain_x, g.gain_y, g.w, g.h] for g in geoms],
                         dtype=torch.float32, device=boxes.device)[image]
    offset, gain, limit = table[:, 0:2].repeat(1, 2), table[:, 2:4].repeat(1, 2), table[:, 4:6].repeat(1, 2)
    return ((boxes - offset) / gain).clamp(min=0).minimum(limit)
