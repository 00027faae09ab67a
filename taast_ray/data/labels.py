"""COCO / LVIS label files: loading, validation and the class counts of eq. 5.

Class index k is the position of a category in the categories list ordered by category id
(SPEC.md §3); every other module goes through :class:`LabelSet` for that mapping.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from taast_ray.schemas.json_files import LABEL_DOCUMENT, parse
from taast_ray.errors import InputError
from taast_ray.io import read_user_text


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
        return json.loads(read_user_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({' '.join(str(exc).split())[:160]})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deep)") from None


def labels_from_dict(raw, path: str | Path) -> LabelSet:
    """Validate a parsed COCO / LVIS document (:data:`~taast_ray.schemas.json_files.LABEL_DOCUMENT`);
    ``path`` names it in the errors."""
    parse(LABEL_DOCUMENT, raw, str(path))
    categories = sorted(raw["categories"], key=lambda c: c["id"])
    return LabelSet(str(path), categories, raw.get("images") or [], raw.get("annotations") or [], raw)
