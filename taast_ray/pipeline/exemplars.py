"""The labelled set's class prototypes for exemplar rarity (selection/exemplar.py).

Before the pool's pass, L's images go once through the same detector (its classification
feature at each labelled box), and each class gets the mean of its boxes' centred, normalised
features. This is a pass over L, never over the pool: the pool's posteriors come out of the
detector actors' own forward pass. L's images are read where its ``file_name`` says: absolute,
a URI, or relative to ``image_root`` (the dataset's image folder; on the command line
``--labelled-images``, by default the labels file's folder).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from taast_ray.console import say
from taast_ray.data.labels import LabelSet
from taast_ray.errors import InputError
from taast_ray.io import is_uri
from taast_ray.selection.exemplar import Prototypes, class_prototypes
from taast_ray.stages.decode import decode_image
from taast_ray.stages.sources import read_one

BATCH = 32


def labelled_image_location(file_name: str, image_root) -> str:
    """Where L's image is: ``file_name`` itself when absolute or a URI, else under ``image_root``."""
    if is_uri(file_name) or Path(file_name).is_absolute() or image_root is None:
        return file_name
    return f"{str(image_root).rstrip('/')}/{file_name}" if is_uri(image_root) else str(Path(image_root) / file_name)


def labelled_boxes(labels: LabelSet, image_root) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(location, xyxy boxes, class indices) of every L image with ≥ 1 box."""
    by_image: dict = {}
    for a in labels.annotations:
        by_image.setdefault(a["image_id"], []).append(a)
    out = []
    for img in labels.images:
        anns = by_image.get(img["id"])
        if not anns:
            continue
        if "file_name" not in img:
            raise InputError(f"{labels.path}: image {img['id']} has no file_name (exemplar rarity reads L's images)")
        xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        out.append((labelled_image_location(str(img["file_name"]), image_root), boxes,
                    labels.class_index([a["category_id"] for a in anns])))
    return out


def box_features(detector, items, batch: int = BATCH):
    """The detector's classification feature of every box of ``items`` (:func:`labelled_boxes`),
    read through the pool's own reader and decoder; an image that cannot be read is left out.
    Returns (features (m, D), class indices (m,), head levels (m,), unreadable locations)."""
    features, classes, levels, unreadable = [], [], [], []
    for at in range(0, len(items), batch):
        images, boxes = [], []
        for location, xyxy, cls in items[at:at + batch]:
            image, _ = decode_image(read_one(location)[0])
            if image is None:
                unreadable.append(location)
                continue
            images.append(image)
            boxes.append(xyxy)
            classes.append(cls)
        f, level = detector.labelled_box_features(images, boxes, with_level=True)
        features.append(f)
        levels.append(level)
    if not classes:
        return np.zeros((0, detector.feature_dim), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), unreadable
    return np.concatenate(features), np.concatenate(classes), np.concatenate(levels), unreadable


def build_prototypes(weights, labels: LabelSet, image_root, *, imgsz: int, device: str = "auto",
                     temperature: float, batch: int = BATCH) -> tuple[Prototypes, dict]:
    """L's prototypes with the detector ``weights``, and a record of the pass (images read, boxes,
    unreadable images, seconds). An unreadable L image is skipped and counted; none readable
    fails with one line naming the labels file."""
    from taast_ray.models.detector import Detector

    start = time.perf_counter()
    items = labelled_boxes(labels, image_root)
    if not items:
        raise InputError(f"{labels.path}: no labelled boxes: exemplar rarity needs L's boxes")
    detector = Detector(str(weights), imgsz=imgsz, device=device, num_classes=labels.num_classes,
                        box_features=True)
    features, classes, _, unreadable = box_features(detector, items, batch)
    if not len(classes):
        raise InputError(f"{labels.path}: none of its {len(items)} labelled images could be read "
                         f"(first: {unreadable[0]}); exemplar rarity reads them from their file_name")
    protos = class_prototypes(features, classes, labels.num_classes, temperature)
    record = {"images": len(items) - len(unreadable), "boxes": int(len(classes)),
              "classes_with_exemplars": int(protos.present.sum()), "unreadable": len(unreadable),
              "unreadable_first": unreadable[:5], "seconds": round(time.perf_counter() - start, 3)}
    say(f"exemplars: {record['boxes']} labelled boxes of {record['classes_with_exemplars']} classes "
        f"from {record['images']} images" + (f" ({len(unreadable)} unreadable)" if unreadable else "")
        + f" in {record['seconds']:.1f} s")
    return protos, record
