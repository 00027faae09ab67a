"""COCO / LVIS JSON → the Ultralytics YOLO dataset layout.

Layout written under ``out``::

    images/<split>/<name>.jpg   hard links to the originals (symlink, then copy, as fallbacks)
    labels/<split>/<name>.txt   one "class cx cy w h" line per box, normalised to [0, 1]
    dataset.yaml                path, train/val/test, names (index → name)

Class index k is the position of the category in ``categories`` ordered by id (SPEC.md §3), so
a detector trained on this layout emits score rows in the order the selection code expects.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from taast_ray.errors import InputError


def export_yolo(annotation_files: dict[str, Path], image_root: Path, out: Path,
                categories: list[dict]) -> Path:
    """Write each split of ``annotation_files`` ({split: COCO json}) as YOLO; return the yaml.

    ``image_root / image["file_name"]`` must be each image's file. Images without boxes get an
    empty label file, so Ultralytics counts them as backgrounds rather than missing labels.
    """
    out = Path(out)
    cats = sorted(categories, key=lambda c: c["id"])
    index_of = {c["id"]: k for k, c in enumerate(cats)}
    for split, ann_file in annotation_files.items():
        data = json.loads(Path(ann_file).read_text())
        _export_split(data, Path(ann_file), split, Path(image_root), out, index_of)
    return write_dataset_yaml(out, list(annotation_files), [c["name"] for c in cats])


def write_dataset_yaml(out: Path, splits: list[str], names: list[str]) -> Path:
    """dataset.yaml with an absolute ``path`` so Ultralytics finds it from any working directory."""
    spec = {"path": str(Path(out).resolve()), "names": dict(enumerate(names))}
    for split in splits:
        spec[split] = f"images/{split}"
    path = Path(out) / "dataset.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=True))
    return path


def _export_split(data: dict, ann_file: Path, split: str, image_root: Path, out: Path,
                  index_of: dict[int, int]) -> None:
    img_dir, lbl_dir = out / "images" / split, out / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    lines: dict[int, list[str]] = {img["id"]: [] for img in data["images"]}
    images = {img["id"]: img for img in data["images"]}
    for ann in data.get("annotations", []):
        img = images.get(ann["image_id"])
        if img is None:
            raise InputError(f"{ann_file}: annotation {ann.get('id')} refers to unknown image "
                             f"{ann['image_id']}")
        if ann["category_id"] not in index_of:
            raise InputError(f"{ann_file}: annotation {ann.get('id')} has unknown category "
                             f"{ann['category_id']}")
        if ann.get("iscrowd", 0):
            continue  # crowd regions are not single objects; Ultralytics' own converter skips them
        line = yolo_line(ann["bbox"], img["width"], img["height"], index_of[ann["category_id"]])
        if line is not None:
            lines[img["id"]].append(line)
    for image_id, img in images.items():
        name = _flat_name(img["file_name"], split)
        _link(image_root / img["file_name"], img_dir / name)
        text = "".join(f"{line}\n" for line in lines[image_id])
        (lbl_dir / Path(name).with_suffix(".txt")).write_text(text)


def yolo_line(bbox: list[float], width: int, height: int, cls: int) -> str | None:
    """COCO [x, y, w, h] pixels → "cls cx cy w h" normalised and clipped; None for empty boxes."""
    x0, y0 = max(bbox[0], 0.0), max(bbox[1], 0.0)
    x1, y1 = min(bbox[0] + bbox[2], width), min(bbox[1] + bbox[3], height)
    if x1 <= x0 or y1 <= y0:
        return None
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    return f"{cls} {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"


def _flat_name(file_name: str, split: str) -> str:
    """A file name unique within the split folder: drop a leading split folder, join the rest.

    Pseudo-labelled pool images carry absolute paths; their root is dropped too, so that they
    land inside the split folder (joining an absolute name would escape it)."""
    path = Path(file_name)
    parts = path.parts[1:] if path.is_absolute() else path.parts
    if len(parts) > 1 and parts[0] == split:
        parts = parts[1:]
    return "__".join(parts)


def _link(src: Path, dst: Path) -> None:
    """Hard link (no extra space, survives moving the tree), else symlink, else copy."""
    if not src.is_file():
        raise InputError(f"{src}: image file not found")
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copyfile(src, dst)
