"""How good the pseudo labels are, by frequency group, where ground truth is known (simulation).

Self-training is where TAAST's measured gain is, and pseudo labels are known to miss tail
classes, so each cycle measures them against the oracle: a pseudo box is a true positive when it
matches an unmatched ground-truth box of the same class on the same image at IoU ≥ 0.5 (boxes
taken by descending score, as COCO's matching does). Per group g of the classes (r/c/f counted on
L0, SPEC §6):

- precision_g = TP_g / pseudo boxes whose class is in g (how much of what P adds to g is right);
- recall_g = TP_g / ground-truth objects of g on the pool's images (how much of g's objects in
  the pool the pseudo labels bring in; P holds only images whose every box is confident);
- recall on P's images alone, beside it, to tell a confident-but-wrong P from a P too small.

Pure functions over COCO dicts: no Ray, no files.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

IOU_MATCH = 0.5
GROUPS = ("r", "c", "f")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every COCO [x, y, w, h] box of ``a`` with every one of ``b``, (len(a), len(b))."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y2 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def matched(pseudo_boxes: list[dict], truth_boxes: list[dict], iou: float = IOU_MATCH) -> list[bool]:
    """For each pseudo box of one image, whether it matches a ground-truth box of its class
    (greedy by descending score; each truth box matched once)."""
    hit = [False] * len(pseudo_boxes)
    taken: set[int] = set()
    order = sorted(range(len(pseudo_boxes)), key=lambda i: -float(pseudo_boxes[i].get("score", 1.0)))
    for i in order:
        box = pseudo_boxes[i]
        same = [j for j, t in enumerate(truth_boxes) if t["category_id"] == box["category_id"] and j not in taken]
        if not same:
            continue
        overlaps = iou_matrix([box["bbox"]], [truth_boxes[j]["bbox"] for j in same])[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou:
            hit[i] = True
            taken.add(same[best])
    return hit


def _by_image(labels: dict, key) -> dict:
    out = defaultdict(list)
    names = {img["id"]: key(img) for img in labels["images"]}
    for a in labels["annotations"]:
        out[names[a["image_id"]]].append(a)
    return out


def pseudo_label_quality(pseudo: dict, truth: dict, frequency: dict[int, str], iou: float = IOU_MATCH) -> dict:
    """Precision and recall of the pseudo labels ``pseudo`` (pseudo_labels.json: images carry
    ``taast_image_id``) against ``truth`` (the ground truth of the cycle's pool, every pool image
    listed, ids matching ``taast_image_id`` as strings), per group of ``frequency`` (category id →
    r/c/f). Undefined ratios (nothing to divide by) are None."""
    pseudo_of = _by_image(pseudo, lambda img: str(img.get("taast_image_id", img["id"])))
    truth_of = _by_image(truth, lambda img: str(img["id"]))
    unknown = sorted(set(pseudo_of) - {str(img["id"]) for img in truth["images"]})
    if unknown:
        raise ValueError(f"pseudo-labelled image {unknown[0]} is not in the pool's ground truth")
    counts = {g: defaultdict(int) for g in GROUPS}
    for image, boxes in pseudo_of.items():
        for box, hit in zip(boxes, matched(boxes, truth_of.get(image, []), iou)):
            group = frequency.get(box["category_id"])
            if group in counts:
                counts[group]["pseudo"] += 1
                counts[group]["true_positive"] += hit
        for t in truth_of.get(image, []):
            if frequency.get(t["category_id"]) in counts:
                counts[frequency[t["category_id"]]]["objects_on_pseudo_images"] += 1
    for boxes in truth_of.values():
        for t in boxes:
            if frequency.get(t["category_id"]) in counts:
                counts[frequency[t["category_id"]]]["objects"] += 1
    return {g: _ratios(c) for g, c in counts.items()}


def _ratios(c: dict) -> dict:
    tp, pseudo, objects, on_p = (c[k] for k in ("true_positive", "pseudo", "objects", "objects_on_pseudo_images"))
    return {"pseudo_boxes": pseudo, "true_positive": tp, "objects": objects,
            "precision": tp / pseudo if pseudo else None, "recall": tp / objects if objects else None,
            "recall_on_pseudo_images": tp / on_p if on_p else None}
