"""COCO / LVIS label files: loading, validation and the class counts of eq. 5.

Class index k is the position of a category in the categories list ordered by category id
(SPEC.md §3); every other module goes through :class:`LabelSet` for that mapping.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from taast_ray.errors import InputError


@dataclass
class LabelSet:
    path: str
    categories: list[dict]                  # ordered by id
    images: list[dict]
    annotations: list[dict]
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def category_ids(self) -> np.ndarray:
        return np.array([c["id"] for c in self.categories], dtype=np.int64)

    @property
    def category_names(self) -> list[str]:
        return [str(c.get("name", c["id"])) for c in self.categories]

    def class_index(self, category_ids) -> np.ndarray:
        """Map category ids to class indices k (raises KeyError on an unknown id)."""
        lookup = {int(cid): k for k, cid in enumerate(self.category_ids)}
        return np.array([lookup[int(c)] for c in category_ids], dtype=np.int64)

    def frequencies(self) -> list[str | None]:
        return [c.get("frequency") for c in self.categories]

    def class_counts(self, mode: str = "images") -> np.ndarray:
        """n_c over this set: images holding ≥ 1 box of class c (or boxes, mode='boxes')."""
        if not self.annotations:
            return np.zeros(self.num_classes, dtype=np.int64)
        classes = self.class_index([a["category_id"] for a in self.annotations])
        if mode == "boxes":
            return np.bincount(classes, minlength=self.num_classes).astype(np.int64)
        image_rows = np.array([a["image_id"] for a in self.annotations])
        pairs = np.unique(np.stack([_dense_ids(image_rows), classes], axis=1), axis=0)
        return np.bincount(pairs[:, 1], minlength=self.num_classes).astype(np.int64)

    def image_id_strings(self) -> list[str]:
        return [str(img["id"]) for img in self.images]


def _dense_ids(values: np.ndarray) -> np.ndarray:
    return np.unique(values.astype(str), return_inverse=True)[1].astype(np.int64)


def load_labels(path: str | Path) -> LabelSet:
    """Read and validate a COCO or LVIS detection JSON; any defect is a one-line InputError."""
    return labels_from_dict(read_labels_json(path), path)


def read_labels_json(path: str | Path):
    """A label file's parsed JSON (COCO, LVIS or a Label Studio export), or a one-line InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: labels file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({' '.join(str(exc).split())[:160]})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deep)") from None


def labels_from_dict(raw, path: str | Path) -> LabelSet:
    """Validate a parsed COCO / LVIS document; ``path`` names it in the errors."""
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        raise InputError(f"{path}: missing the 'categories' list of a COCO/LVIS file")
    _check_categories(path, raw["categories"])
    categories = sorted(raw["categories"], key=lambda c: c["id"])
    images = raw.get("images") or []
    annotations = raw.get("annotations") or []
    for key, records in (("images", images), ("annotations", annotations)):
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InputError(f"{path}: '{key}' must be a list of objects")
    _check_images(path, images)
    _check_annotations(path, annotations, {c["id"] for c in categories}, {i["id"] for i in images})
    return LabelSet(str(path), categories, images, annotations, raw)


def _check_categories(path: Path, categories: list[dict]) -> None:
    if not categories:
        raise InputError(f"{path}: 'categories' is empty")
    seen = set()
    for cat in categories:
        if not isinstance(cat, dict):
            raise InputError(f"{path}: category {cat!r:.80} is not an object")
        cid = cat.get("id")
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise InputError(f"{path}: category {cat!r:.80} has no integer 'id'")
        if not -2**63 <= cid < 2**63:
            raise InputError(f"{path}: category id {cid} is out of range (a 64-bit integer)")
        if cid in seen:
            raise InputError(f"{path}: duplicate category id {cid}")
        seen.add(cid)


def _check_images(path: Path, images: list[dict]) -> None:
    seen = set()
    for img in images:
        if not isinstance(img, dict):
            raise InputError(f"{path}: image {img!r:.80} is not an object")
        for side in ("width", "height"):
            v = img.get(side)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 2**31):
                raise InputError(f"{path}: image {img.get('id')!r:.40}: {side!r} must be a positive number, got {v!r:.40}")
        iid = img.get("id")
        if not isinstance(iid, (int, str)) or isinstance(iid, bool):
            raise InputError(f"{path}: image {img!r:.80} has no integer or string 'id'")
        if iid in seen:
            raise InputError(f"{path}: duplicate image id {iid}")
        seen.add(iid)


def _check_annotations(path: Path, annotations: list[dict], category_ids: set, image_ids: set) -> None:
    for i, ann in enumerate(annotations):
        name = f"annotation {ann.get('id', f'#{i}')!s:.40}"
        if not isinstance(ann.get("image_id"), (int, str)) or isinstance(ann.get("image_id"), bool):
            raise InputError(f"{path}: {name} has no integer or string image_id")
        if (not isinstance(ann.get("category_id"), int) or isinstance(ann.get("category_id"), bool)
                or ann.get("category_id") not in category_ids):
            raise InputError(f"{path}: {name} has unknown category_id {ann.get('category_id')!r}")
        if image_ids and ann.get("image_id") not in image_ids:
            raise InputError(f"{path}: {name} refers to unknown image_id {ann.get('image_id')!r}")
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise InputError(f"{path}: {name} has no [x, y, w, h] bbox")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
            raise InputError(f"{path}: {name} has a non-finite bbox {bbox}")
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise InputError(f"{path}: {name} has a negative or zero-area bbox {bbox}")
