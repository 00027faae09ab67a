"""Class-aware NMS over a whole batch, returning where each kept box sits in the head output.

The rule is Ultralytics' ``non_max_suppression`` (best class only, confidence > threshold, at
most ``max_nms`` candidates and ``max_det`` kept boxes per image, suppression within a class),
so the kept boxes are the ones its predictor keeps. Ultralytics loops over images with several
host waits each; here filtering, ordering and the per-image limits are batched tensor ops, and
torchvision's NMS runs once per group of consecutive images holding up to ``boxes_per_call``
candidates (its IoU mask grows with the square of that). Boxes are shifted apart per (image,
class) in float64: float32 would round shifts of ~1e8 pixels.
"""
from __future__ import annotations

import torch

MAX_WH = 7680  # Ultralytics' per-class shift, larger than any input side


def kept_boxes(pred: torch.Tensor, conf: float, iou: float, *, max_det: int = 300, max_nms: int = 30000,
               boxes_per_call: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred`` (B, 4 + C, anchors): xywh then sigmoid scores -> (image, anchor) of the kept boxes,
    grouped by image, each image's boxes by decreasing confidence."""
    import torchvision
    from ultralytics.utils.ops import xywh2xyxy

    best, cls = pred[:, 4:].max(1)
    image, anchor = torch.nonzero(best > conf, as_tuple=True)
    order = by_image_then_score(image, best[image, anchor])
    order = order[rank_in_group(image[order]) < max_nms]
    image, anchor = image[order], anchor[order]
    score = best[image, anchor].double()
    shift = (image * (pred.shape[1] - 4) + cls[image, anchor]).double() * MAX_WH
    boxes = xywh2xyxy(pred[image, :4, anchor]).double() + shift[:, None]
    counts = torch.bincount(image, minlength=pred.shape[0]).tolist()
    keep = [lo + torchvision.ops.nms(boxes[lo:hi], score[lo:hi], iou)
            for lo, hi in row_groups(counts, boxes_per_call)]
    keep = torch.cat(keep) if keep else image.new_zeros(0)
    keep = keep[by_image_then_score(image[keep], score[keep])]
    keep = keep[rank_in_group(image[keep]) < max_det]
    return image[keep], anchor[keep]


def by_image_then_score(image: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Order grouping rows by image, highest score first within an image."""
    order = torch.argsort(score, descending=True, stable=True)
    return order[torch.argsort(image[order], stable=True)]


def rank_in_group(groups: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... within each run of equal values of a sorted tensor."""
    return torch.arange(len(groups), device=groups.device) - torch.searchsorted(groups, groups)


def row_groups(counts: list[int], cap: int) -> list[tuple[int, int]]:
    """Row ranges of consecutive images, each up to ``cap`` rows (one image may exceed it alone)."""
    groups, lo, hi = [], 0, 0
    for n in counts:
        if hi > lo and hi - lo + n > cap:
            groups.append((lo, hi))
            lo = hi
        hi += n
    if hi > lo:
        groups.append((lo, hi))
    return groups
