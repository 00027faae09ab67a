"""``taast import yolo data.yaml --out DIR``: an Ultralytics dataset as COCO JSON and a pool manifest.

What Ultralytics reads, read the same way: ``path`` (the dataset root; relative to the YAML's
folder), ``train`` / ``val`` / ``test`` (a folder searched recursively, a ``.txt`` list of image
paths, or a list of either), ``names`` (a list or {index: name}). An image's label file is its
path with the last ``images`` folder replaced by ``labels`` and the extension by ``.txt``; each
line is ``class cx cy w h`` normalised (a polygon line ``class x1 y1 x2 y2 ...`` gives its
bounding box, as Ultralytics' detection loader does).

Labelled or not: an image with a label file is labelled (an empty file: labelled, no objects);
an image without one is unlabelled. Unlabelled images of ``train``, of a ``pool`` (or
``unlabelled``) entry of the YAML, and of ``extra_pool`` folders form the pool; unlabelled
``val``/``test`` images are left out and counted.

Written under ``out``: ``train.json`` (L), ``val.json`` / ``test.json`` when those splits exist,
``pool.parquet`` (image_id, uri), ``taast.yaml`` (the ``data:`` section of a production run;
val and test are evaluated there when written).
COCO category ids are the YOLO class index + 1, names kept; ``file_name`` and the pool's
``image_id`` are the image's path relative to the dataset root (the run's ``data.images``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import yaml

from taast_ray.data.images import image_size
from taast_ray.errors import InputError
from taast_ray.io import publish_output_set, read_document, read_user_text, write_json, write_parquet, write_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
POOL_KEYS = ("pool", "unlabelled", "unlabeled")


def read_data_yaml(path: str | Path) -> tuple[dict, Path]:
    """The YAML's mapping and the dataset root it names."""
    path = Path(path)
    spec = read_document(path, "data.yaml not found")
    if not isinstance(spec, dict) or "names" not in spec:
        raise InputError(f"{path}: not an Ultralytics data.yaml (no 'names')")
    if not spec.get("train"):
        raise InputError(f"{path}: no 'train:' entry (the labelled images, and unlabelled ones for the pool)")
    root = Path(str(spec.get("path") or "."))  # a number or a list is no folder: said below
    if not root.is_absolute():
        root = path.parent / root
    if not root.is_dir():
        raise InputError(f"{path}: dataset root {root} is not a folder")
    return spec, root.resolve()


def class_names(spec: dict, source: Path) -> list[str]:
    names = spec["names"]
    if isinstance(names, dict):
        keys: dict[int, object] = {}  # class index -> its key as written (0 or "0")
        for k in names:
            index = _class_index(k)
            if index is None:
                raise InputError(f"{source}: 'names' keys must be class indices 0..C-1, got {k!r:.40}")
            keys.setdefault(index, k)
        order = sorted(_class_index(k) for k in names)
        if order != list(range(len(order))):
            raise InputError(f"{source}: 'names' keys must be 0..{len(order) - 1}, got {order}")
        names = [names[keys[k]] for k in order]
    if not isinstance(names, list) or not names:
        raise InputError(f"{source}: 'names' must be a non-empty list or mapping")
    for k, n in enumerate(names):
        if n is None or isinstance(n, (list, dict)):
            raise InputError(f"{source}: 'names' entry {k} must be a class name, got {n!r:.40}")
    return [str(n) for n in names]


def _class_index(key) -> int | None:
    """A 'names' key as a class index, as Ultralytics' int(key) reads it, but never a boolean or a
    number with a fraction (0.5 is no index; int() would make it 0)."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, float):
        return int(key) if key.is_integer() else None
    if isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            return None
    return None


def split_images(entry, root: Path, source: Path) -> list[Path]:
    """The images of one split entry: folder(s), .txt list(s) or single image paths."""
    entries = entry if isinstance(entry, list) else [entry]
    found: list[Path] = []
    for item in entries:
        p = Path(str(item))
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.suffix == ".txt" and p.is_file():
            for line in read_user_text(p).splitlines():
                line = line.strip()
                if line:
                    q = Path(line)
                    found.append(q if q.is_absolute() else (p.parent / q if line.startswith("./") else root / q))
        elif p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.append(p)
        else:
            raise InputError(f"{source}: split entry {item!r} is not a folder, .txt list or image under {root}")
    return [f.resolve() for f in found]


def label_path(image: Path) -> Path:
    """Ultralytics' img2label_paths: the last /images/ becomes /labels/, the suffix .txt."""
    text = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in text:
        head, _, tail = text.rpartition(sa)
        text = head + sb + tail
    return Path(text).with_suffix(".txt")


def parse_label_file(path: Path, width: int, height: int, classes: int) -> list[tuple[int, list[float]]]:
    """(class index, COCO [x, y, w, h] pixels) per line; any defect is a one-line InputError."""
    return parse_label_lines(read_user_text(path), str(path), width, height, classes)


def parse_label_lines(text: str, source: str, width: int, height: int,
                      classes: int) -> list[tuple[int, list[float]]]:
    """A YOLO label file's text (``class cx cy w h`` normalised, or a polygon: its bounding box) as
    (class index, COCO [x, y, w, h] pixels) per line; ``source`` names the file in the errors."""
    boxes = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{source}: line {number}"
        try:
            cls, values = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise InputError(f"{where}: expected 'class cx cy w h' numbers, got {line.strip()[:60]!r}") from None
        if not 0 <= cls < classes:
            raise InputError(f"{where}: class {cls} is not in names (0..{classes - 1})")
        if len(values) == 4:
            cx, cy, w, h = values
            x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        elif len(values) >= 6 and len(values) % 2 == 0:  # a segment: its bounding box
            xs, ys = values[0::2], values[1::2]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        else:
            raise InputError(f"{where}: expected 'class cx cy w h' (or a polygon), got {len(values)} numbers")
        if not all(-0.01 <= v <= 1.01 for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
            raise InputError(f"{where}: box {values[:4]} is not a normalised box of positive area")
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, 1.0), min(y1, 1.0)
        boxes.append((cls, [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height]))
    return boxes


def relative_name(image: Path, root: Path) -> str:
    """The image_id convention: POSIX path relative to the dataset root (absolute when outside)."""
    try:
        return image.relative_to(root).as_posix()
    except ValueError:
        return image.as_posix()


IMPORT_FILES = ("train.json", "val.json", "test.json", "pool.parquet", "taast.yaml")


def import_yolo(data_yaml: str | Path, out: str | Path, extra_pool: list[str] = ()) -> dict:
    """Write the COCO files, the pool manifest and ``taast.yaml`` under ``out``, all at once (every
    image is read and every label file parsed first; the set is published as a selection's is, so a
    refused or failed import leaves ``out`` as it found it); return counts."""
    source = Path(data_yaml)
    spec, root = read_data_yaml(source)
    names = class_names(spec, source)
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    out = Path(out)
    next_id, pool, counts, written = 1, {}, {}, {}
    for split in ("train", "val", "test"):
        if not spec.get(split):
            continue
        images, annotations, skipped = [], [], 0
        for image in split_images(spec[split], root, source):
            labels = label_path(image)
            if not labels.is_file():
                if split == "train":
                    pool[relative_name(image, root)] = str(image)
                else:
                    skipped += 1
                continue
            width, height = image_size(image)
            images.append({"id": next_id, "file_name": relative_name(image, root),
                           "width": width, "height": height})
            for cls, bbox in parse_label_file(labels, width, height, len(names)):
                annotations.append({"id": len(annotations) + 1, "image_id": next_id, "category_id": cls + 1,
                                    "bbox": [round(v, 3) for v in bbox], "iscrowd": 0,
                                    "area": round(bbox[2] * bbox[3], 3)})
            next_id += 1
        if split == "train" and not images:
            raise InputError(f"{source}: no labelled train image (no label file under {root})")
        doc = {"info": {"description": f"imported from {source}"}, "images": images,
               "annotations": annotations, "categories": categories}
        written[split] = (out / f"{split}.json", doc)
        counts[split] = {"images": len(images), "boxes": len(annotations), "unlabelled_skipped": skipped}
    for key in POOL_KEYS:
        for image in split_images(spec[key], root, source) if spec.get(key) else []:
            pool[relative_name(image, root)] = str(image)
    for folder in extra_pool:
        if not str(folder).strip():  # Path("") is the current folder: never what was meant
            raise InputError("--pool: an empty folder name")
        for image in split_images(str(Path(folder).resolve()), root, source):
            pool[relative_name(image, root)] = str(image)
    ids = sorted(pool)
    manifest = pa.table({"image_id": pa.array(ids, pa.string()), "uri": pa.array([pool[i] for i in ids], pa.string())})
    data = {"labelled": str(written["train"][0].resolve()), "pool": str((out / "pool.parquet").resolve()),
            "images": str(root)}
    for split in ("val", "test"):
        if split in written:
            data[split] = str(written[split][0].resolve())
    writers = {f"{split}.json": (lambda doc: lambda p: write_json(p, doc))(doc) for split, (_, doc) in written.items()}
    writers["pool.parquet"] = lambda p: write_parquet(p, manifest)
    writers["taast.yaml"] = lambda p: write_text(p, yaml.safe_dump({"data": data}, sort_keys=False))
    publish_output_set(out, writers, replaces=IMPORT_FILES)
    return {"root": str(root), "classes": names, "splits": counts, "pool": len(ids), "data": data}
