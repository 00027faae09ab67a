"""open_clip image tower: one L2-normalised embedding per image (SPEC §2, eq. 9).

:func:`make_embedder` builds whichever tower ``model.embedder`` names (see
:mod:`taast_ray.embedder_names`): open_clip here, the packaged ImageNet MobileNetV2 in
:mod:`taast_ray.models.mobilenet`; both have ``embed``, ``dim`` and ``device`` (the embedding cache's key is ``embedder_names.cache_key``).

Only the image tower is kept (the text tower is dropped after loading). Pre-processing is
open_clip's eval transform (resize the shortest side, centre crop, normalise) redone in batched
torch ops on the model's device, so a GPU decoder's tensors never go through PIL.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.transforms.v2.functional import InterpolationMode, center_crop_image, resize_image

from taast_ray.errors import ConfigError
from taast_ray.embedder_names import DETECTOR, MOBILENET, TINY_MODEL
from taast_ray.models.letterbox import group_by_shape, resolve_device
from taast_ray.models.tower import FrozenTower, autocast_dtype

# TINY_MODEL: a 2-layer ViT (64 px, 32-d) for tests and the CPU demo; its config ships next to this module.
_RANDOM_INIT_SEED = 0  # weights="none": every actor must build the same random tower
_SCHEMAS = ("hf-hub:", "local-dir:")


def _open_clip():
    import open_clip

    if TINY_MODEL not in open_clip.list_models():
        open_clip.add_model_config(Path(__file__).with_name(f"{TINY_MODEL}.json"))
    return open_clip


def embedding_dim(model_name: str) -> int:
    """The projected embedding size, read from the architecture's config (nothing is built)."""
    cfg = _open_clip().get_model_config(model_name)
    if cfg is None:
        raise ConfigError(f"model.embedder: unknown open_clip architecture {model_name!r}")
    return int(cfg["embed_dim"])


def _create_model(model_name: str, weights: str, image_size: int | None) -> torch.nn.Module:
    open_clip = _open_clip()
    if not model_name.startswith(_SCHEMAS) and model_name not in open_clip.list_models():
        raise ConfigError(f"model.embedder: unknown open_clip architecture {model_name!r}")
    pretrained = None if weights.lower() == "none" else weights
    if pretrained and (os.sep in pretrained or "/" in pretrained) and not os.path.isfile(pretrained):
        raise ConfigError(f"model.embedder_weights: file not found: {pretrained}")
    extra = {"force_image_size": image_size} if image_size else {}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_RANDOM_INIT_SEED)
            return open_clip.create_model(model_name, pretrained=pretrained, **extra)
    except Exception as e:  # unknown tag, failed download (offline), or a file that does not fit
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise ConfigError(f"model.embedder_weights: cannot load {weights!r} for {model_name}: {reason}") from e


def clip_preprocess(images: list[torch.Tensor], size: int, mean, std, interpolation: str = "bicubic",
                    resize_mode: str = "shortest") -> torch.Tensor:
    """uint8 HxWx3 tensors on one device -> normalised float (B, 3, size, size).

    Same steps and output sizes as open_clip's eval transform; resizing stays in uint8 with
    antialiasing, as PIL does, so results differ from PIL only by rounding.
    """
    mode = InterpolationMode.BILINEAR if interpolation == "bilinear" else InterpolationMode.BICUBIC
    device = images[0].device
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8, device=device)
    for idx in group_by_shape(images).values():
        x = torch.stack([images[i] for i in idx]).permute(0, 3, 1, 2)
        if resize_mode == "squash":
            x = resize_image(x, [size, size], mode, antialias=True)
        else:  # shortest side -> size (torchvision Resize(int) sizing), then centre crop
            x = center_crop_image(resize_image(x, [size], mode, antialias=True), [size, size])
        out[idx] = x
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return (out.float().div_(255) - mean_t) / std_t


def _preprocess_settings(pp: dict) -> dict:
    size = pp.get("size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise ConfigError(f"model.embedder: non-square input size {tuple(size)} is not supported")
        size = size[0]
    resize_mode = pp.get("resize_mode", "shortest")
    if resize_mode not in ("shortest", "squash"):
        raise ConfigError(f"model.embedder: resize mode {resize_mode!r} is not supported")
    return {"size": int(size), "mean": tuple(pp["mean"]), "std": tuple(pp["std"]),
            "interpolation": pp.get("interpolation", "bicubic"), "resize_mode": resize_mode}


class Embedder(FrozenTower):
    """Frozen CLIP image tower. ``precision`` applies on CUDA only; the CPU runs float32."""

    def __init__(self, model_name: str = "ViT-L-14-quickgelu", weights: str = "openai", *,
                 device: str = "auto", image_size: int | None = None, precision: str = "auto"):
        dtype = autocast_dtype(precision)
        self.device = resolve_device(device)
        model = _create_model(model_name, str(weights), image_size)
        self._pp = _preprocess_settings(_open_clip().get_model_preprocess_cfg(model))
        self.visual = model.visual.eval().to(self.device).requires_grad_(False)
        del model  # the text tower is never used
        out_dim = getattr(self.visual, "output_dim", None)
        self.dim = int(out_dim) if out_dim else embedding_dim(model_name)
        self.model_name, self.weights, self.image_size = model_name, str(weights), self._pp["size"]
        self._dtype = dtype

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(clip_preprocess(x, **self._pp))


def make_embedder(model_name: str, weights: str, *, device: str = "auto", image_size: int | None = None,
                  precision: str = "auto"):
    """The image tower ``model.embedder`` names: an open_clip architecture or ``mobilenetv2-imagenet``.

    ``detector`` has no tower of its own: its rows are written by the detection pass.
    """
    if model_name == MOBILENET:
        from taast_ray.models.mobilenet import MobileNetEmbedder

        return MobileNetEmbedder(weights, device=device, image_size=image_size, precision=precision)
    if model_name == DETECTOR:
        raise ConfigError("model.embedder: 'detector' features come from the detection pass, "
                          "not from an embedder actor")
    return Embedder(model_name, weights, device=device, image_size=image_size, precision=precision)
