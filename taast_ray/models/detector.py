"""YOLOv8 through Ultralytics, keeping each kept box's full vector of class scores (SPEC §2).

Ultralytics' predictor keeps only (conf, class) per box after NMS. We run the same model and the
same NMS rule, batched (``nms.kept_boxes``), which says where each kept box sits in the raw head
output; the full sigmoid score rows are gathered there. Pre-processing is our batched torch
letterbox (same geometry as Ultralytics'); a batch's boxes and scores leave the device in one copy.

With ``embed=True`` the same forward pass also yields one feature row per image (``embedder:
detector``): a forward pre-hook on the Detect head takes its inputs — the neck's P3/P4/P5 maps —
and each level is averaged over the cells of the image itself (the letterbox padding is left out,
so the row does not depend on the aspect ratio), L2-normalised, concatenated, L2-normalised.

With ``exemplars`` (class prototypes, ``selection/exemplar.py``) each image also gets one row of
exemplar posteriors, v_k = max over its kept boxes of q_{k,b}: forward pre-hooks on the head's
final classification convolutions keep their inputs, the feature each anchor's class logits are a
linear function of (the same width at every level), and each kept box's feature is gathered at
the anchor that produced it — the same pass, no second model, no second decode.
:meth:`Detector.labelled_box_features` gives the features of labelled boxes, for the prototypes.
"""
from __future__ import annotations

import contextlib
import os
import platform
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import taast_ray  # noqa: F401  (offline switches must be set before Ultralytics is imported)
from taast_ray.errors import ConfigError
from taast_ray.models.letterbox import as_image_tensors, boxes_to_original, letterbox_batch, resolve_device
from taast_ray.models.nms import kept_boxes
from taast_ray.models.transfer import to_host
from taast_ray.selection.exemplar import Prototypes, box_posterior, image_max

_RANDOM_INIT_SEED = 0  # a YAML model is random: every actor must build the same one


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


def _build_from_yaml(cfg: str, num_classes: int | None) -> torch.nn.Module:
    from ultralytics.nn.tasks import DetectionModel

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_RANDOM_INIT_SEED)
            return DetectionModel(cfg, nc=num_classes, verbose=False)
    except Exception as e:  # Ultralytics raises many kinds for a bad YAML
        raise ConfigError(f"model.weights: cannot build {cfg!r}: {_one_line(e)}") from e


def _load_checkpoint(weights: str) -> torch.nn.Module:
    from ultralytics import YOLO

    looks_like_path = os.sep in weights or "/" in weights
    if looks_like_path and not Path(weights).is_file():
        # Ultralytics would try to download a missing path; a path the user gave must exist
        raise ConfigError(f"model.weights: file not found: {weights}")
    try:
        yolo = YOLO(weights)  # resolves names such as yolov8s.pt (download when online)
    except Exception as e:
        raise ConfigError(f"model.weights: cannot load {weights!r}: {_one_line(e)}") from e
    if yolo.task != "detect" or not isinstance(yolo.model, torch.nn.Module):
        raise ConfigError(f"model.weights: {weights!r} is a {yolo.task!r} model, not a detection model")
    return yolo.model


def load_detection_model(weights: str | os.PathLike | torch.nn.Module,
                         num_classes: int | None = None) -> torch.nn.Module:
    """A float32 Ultralytics DetectionModel from a YAML, a local .pt, a name, or a module."""
    if isinstance(weights, torch.nn.Module):
        model = deepcopy(weights)  # fusing edits layers in place; leave the caller's intact
    elif str(weights).lower().endswith((".yaml", ".yml")):
        model = _build_from_yaml(str(weights), num_classes)
    else:
        model = _load_checkpoint(str(weights))
    nc = int(model.model[-1].nc)
    if num_classes is not None and num_classes != nc:
        raise ConfigError(f"model.num_classes: {num_classes} given but {weights} has {nc} classes")
    return model.float()


def _memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last where Ultralytics' AutoBackend picks it: CUDA, and x86 CPUs with oneDNN,
    whose convolutions run faster in NHWC (and it keeps our numerics next to Ultralytics')."""
    x86_onednn = (device.type == "cpu" and platform.machine() in {"AMD64", "x86_64"}
                  and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
    return torch.channels_last if device.type == "cuda" or x86_onednn else torch.contiguous_format


@dataclass
class BoxRows:
    """Kept boxes of a batch, flat: image i owns rows ``offsets[i]:offsets[i + 1]``."""
    boxes: np.ndarray     # (m, 4) float32 xyxy pixels of the original image
    scores: np.ndarray    # (m, C) float32 sigmoid class scores
    offsets: np.ndarray   # (n + 1,) int64
    embeddings: np.ndarray | None = None  # (n, D) float32 unit rows of pooled neck features
    exemplar: np.ndarray | None = None    # (n, C) float32 v_k = max_b q_{k,b} (with prototypes)

    @classmethod
    def empty(cls, n: int, num_classes: int, embed_dim: int | None = None,
              exemplar: bool = False) -> "BoxRows":
        emb = None if embed_dim is None else np.zeros((n, embed_dim), np.float32)
        return cls(np.zeros((0, 4), np.float32), np.zeros((0, num_classes), np.float32),
                   np.zeros(n + 1, np.int64), emb, np.zeros((n, num_classes), np.float32) if exemplar else None)


def neck_channels(model: torch.nn.Module) -> list[int]:
    """Channels of each feature map the Detect head reads (P3, P4, P5 for YOLOv8)."""
    head = model.model[-1]
    return [int(branch[0].conv.in_channels) for branch in head.cv2]


def class_feature_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The Detect head's final classification convolution of each level (cv3[i][-1]): its input
    is the feature the level's class logits are a linear function of."""
    head = model.model[-1]
    return [branch[-1] for branch in head.cv3]


def anchor_features(maps: list[torch.Tensor]) -> torch.Tensor:
    """(B, D, anchors): the levels' maps flattened in the head's anchor order (level by level,
    row-major within a level, as Detect concatenates its outputs)."""
    return torch.cat([m.float().flatten(2) for m in maps], 2)


def box_iou_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every xyxy row of ``a`` (g, 4) with every row of ``b`` (A, 4): (g, A)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def pooled_features(maps: list[torch.Tensor], geoms, imgsz: int) -> torch.Tensor:
    """Mean of each level over the cells covering the image (not the padding), each level
    L2-normalised (so P3/P4/P5 weigh the same whatever their widths), concatenated and
    L2-normalised again: (B, sum of channels) float32 unit rows."""
    rows = []
    for fmap in maps:
        b, _, h, w = fmap.shape
        stride_y, stride_x = imgsz / h, imgsz / w
        mask = torch.zeros((b, 1, h, w), dtype=torch.float32, device=fmap.device)
        for i, g in enumerate(geoms):  # every cell that overlaps the image
            y0, x0 = int(g.top // stride_y), int(g.left // stride_x)
            y1 = max(int(np.ceil((g.top + g.new_h) / stride_y)), y0 + 1)
            x1 = max(int(np.ceil((g.left + g.new_w) / stride_x)), x0 + 1)
            mask[i, :, y0:y1, x0:x1] = 1.0
        level = (fmap.float() * mask).sum((2, 3)) / mask.sum((2, 3))
        rows.append(torch.nn.functional.normalize(level, dim=1))
    return torch.nn.functional.normalize(torch.cat(rows, 1), dim=1)


class Detector:
    """Batched YOLOv8 inference returning every kept box with its full row of class scores.

    ``half``: None uses bf16 autocast on CUDA, True float16 autocast on CUDA, False float32;
    the CPU always runs float32. ``weights`` may also be an in-memory DetectionModel.
    """

    def __init__(self, weights, *, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 device: str = "auto", num_classes: int | None = None, half: bool | None = None,
                 max_det: int = 300, embed: bool = False, exemplars: Prototypes | dict | None = None,
                 box_features: bool = False):
        if not 0.0 <= conf <= 1.0:
            raise ConfigError(f"selection.det_conf: {conf} must be in [0, 1]")
        if not 0.0 <= iou <= 1.0:
            raise ConfigError(f"model.iou: {iou} must be in [0, 1]")
        self.device = resolve_device(device)
        model = load_detection_model(weights, num_classes)
        stride = int(model.stride.max())
        if imgsz < stride or imgsz % stride:
            raise ConfigError(f"model.imgsz: {imgsz} must be a positive multiple of {stride}")
        # fused Conv+BN, as Ultralytics' predictor runs it: faster, same outputs to ~1e-6
        self.model = model.fuse(verbose=False).eval().to(self.device).requires_grad_(False)
        self._memory_format = _memory_format(self.device)
        self.model.to(memory_format=self._memory_format)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one input shape per actor: time the kernels once
        self.num_classes = int(model.model[-1].nc)
        names = getattr(model, "names", None) or {}
        self.names = [str(names.get(i, i)) if isinstance(names, dict) else str(names[i])
                      for i in range(self.num_classes)]
        self.imgsz, self.conf, self.iou, self.max_det, self.half = imgsz, conf, iou, max_det, half
        # embed: the Detect head's inputs are kept during the forward pass and pooled after it
        self.embed_dim = sum(neck_channels(self.model)) if embed else None
        self._neck: list[torch.Tensor] | None = None
        if embed:
            self.model.model[-1].register_forward_pre_hook(self._keep_neck)
        # exemplars / box_features: each level's classification feature is kept during the pass
        self.exemplars = Prototypes.from_dict(exemplars) if isinstance(exemplars, dict) else exemplars
        if self.exemplars is not None and self.exemplars.vectors.shape[0] != self.num_classes:
            raise ConfigError(f"exemplar prototypes: {self.exemplars.vectors.shape[0]} classes, the detector "
                              f"has {self.num_classes}")
        self._class_features: list[torch.Tensor | None] | None = None
        if self.exemplars is not None or box_features:
            layers = class_feature_layers(self.model)
            self._class_features = [None] * len(layers)
            for level, layer in enumerate(layers):
                layer.register_forward_pre_hook(self._keeper(level))
            self.feature_dim = int(layers[0].in_channels)

    def _keep_neck(self, module, args):
        self._neck = list(args[0])  # a copy of the list: the head may rebind its entries

    def _keeper(self, level: int):
        def keep(module, args):
            self._class_features[level] = args[0]
        return keep

    def _take_class_features(self) -> torch.Tensor:
        maps, self._class_features = self._class_features, [None] * len(self._class_features)
        if any(m is None for m in maps):
            raise RuntimeError("the detector's head did not run its classification layers "
                               "(an end-to-end head?): exemplar features need a YOLOv8-style Detect head")
        self._level_sizes = [m.shape[2] * m.shape[3] for m in maps]
        return anchor_features(maps)

    def _autocast(self):
        if self.device.type != "cuda" or self.half is False:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.half else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)

    @torch.inference_mode()
    def predict_rows(self, images: list) -> BoxRows:
        """RGB uint8 HxWx3 images (arrays, or tensors on any device) -> every kept box, flat."""
        if len(images) == 0:
            return BoxRows.empty(0, self.num_classes, self.embed_dim, self.exemplars is not None)
        x, geoms = letterbox_batch(as_image_tensors(images, self.device), self.imgsz)
        x = x.contiguous(memory_format=self._memory_format)
        with self._autocast():
            raw = self.model(x)
        # eval-mode head output: B x (4 + C) x anchors, xywh boxes then sigmoid class scores
        pred = (raw[0] if isinstance(raw, (tuple, list)) else raw).float()
        pooled = None
        if self.embed_dim is not None:
            pooled, self._neck = pooled_features(self._neck, geoms, self.imgsz), None
        features = self._take_class_features() if self.exemplars is not None else None
        return self._postprocess(pred, geoms, pooled, features)

    @torch.inference_mode()
    def labelled_box_features(self, images: list, boxes: list[np.ndarray], with_level: bool = False):
        """The classification feature of each labelled box: ``boxes[i]`` (g_i, 4) xyxy pixels of
        ``images[i]``; each box's feature is taken at the anchor whose predicted box overlaps it
        most (the anchor the detector would answer it with). (Σ g_i, D) float32; ``with_level``:
        also each box's head level (the index of the class convolution its anchor feeds)."""
        if self._class_features is None:
            raise RuntimeError("Detector(box_features=True) keeps the features this needs")
        if len(images) == 0:
            empty = np.zeros((0, self.feature_dim), np.float32)
            return (empty, np.zeros(0, np.int64)) if with_level else empty
        x, geoms = letterbox_batch(as_image_tensors(images, self.device), self.imgsz)
        raw = self.model(x.contiguous(memory_format=self._memory_format))
        pred = (raw[0] if isinstance(raw, (tuple, list)) else raw).float()
        features = self._take_class_features()
        from ultralytics.utils.ops import xywh2xyxy

        rows, chosen = [], []
        for i, (g, gt) in enumerate(zip(geoms, boxes)):
            if len(gt) == 0:
                continue
            gt = torch.as_tensor(np.asarray(gt, np.float32), device=pred.device)
            scale = torch.tensor([g.gain_x, g.gain_y, g.gain_x, g.gain_y], device=pred.device)
            shift = torch.tensor([g.left, g.top, g.left, g.top], dtype=torch.float32, device=pred.device)
            # each anchor's box clipped to the image, as a kept box is (boxes_to_original)
            low = torch.tensor([g.left, g.top], dtype=torch.float32, device=pred.device).repeat(2)
            high = torch.tensor([g.left + g.new_w, g.top + g.new_h], dtype=torch.float32,
                                device=pred.device).repeat(2)
            predicted = xywh2xyxy(pred[i, :4].T).clamp(min=low, max=high)
            anchors = box_iou_rows(gt * scale + shift, predicted).argmax(1)
            rows.append(features[i, :, anchors].T)
            chosen.append(anchors)
        if not rows:
            empty = np.zeros((0, self.feature_dim), np.float32)
            return (empty, np.zeros(0, np.int64)) if with_level else empty
        out, anchors = to_host(torch.cat(rows), torch.cat(chosen))
        out = out.astype(np.float32, copy=False)
        if not with_level:
            return out
        return out, np.searchsorted(np.cumsum(self._level_sizes), anchors, side="right")

    def predict(self, images: list) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image (boxes float32 (n,4), scores float32 (n,C)): :meth:`predict_rows`, split."""
        rows = self.predict_rows(images)
        return [(rows.boxes[a:b], rows.scores[a:b]) for a, b in zip(rows.offsets[:-1], rows.offsets[1:])]

    def _postprocess(self, pred: torch.Tensor, geoms, pooled: torch.Tensor | None = None,
                     features: torch.Tensor | None = None) -> BoxRows:
        from ultralytics.utils.ops import xywh2xyxy

        image, anchor = kept_boxes(pred, self.conf, self.iou, max_det=self.max_det)
        boxes = boxes_to_original(xywh2xyxy(pred[image, :4, anchor]), geoms, image)
        scores = pred[image, 4:4 + self.num_classes, anchor]
        counts = torch.bincount(image, minlength=len(geoms))
        extra = [t for t in (pooled, None if features is None else features[image, :, anchor]) if t is not None]
        rows, counts, *host = to_host(torch.cat([boxes, scores], 1), counts, *extra)
        embeddings = host.pop(0) if pooled is not None else None
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        exemplar = None
        if features is not None:  # q_{k,b} per kept box, then v_k = max over each image's boxes
            exemplar = image_max(box_posterior(host.pop(0), self.exemplars), offsets)
        return BoxRows(rows[:, :4], rows[:, 4:], offsets, embeddings, exemplar)
