"""``taast export SELECTION_DIR --format coco|yolo|labelstudio --out F``: the B selected images for
the annotation tool, with the detector's boxes as pre-annotations.

Reads what every selection publishes (``label_studio_tasks.json``: the tasks in rank order, the
boxes in percent of the image; ``pseudo_labels.json``: the categories). ``labelstudio`` writes the
tasks (``--image-url PREFIX`` replaces each ``data.image`` by PREFIX + image_id, for a Label Studio
that serves the images over HTTP); ``coco`` an images + pre-annotations file (boxes with their
``score``, ``taast_image_id`` on every image); ``yolo`` a folder: images/ (links), labels/ and
dataset.yaml, the boxes as label lines for a tool that starts from YOLO labels.
"""
from __future__ import annotations

import json
from pathlib import Path

from taast_ray.data.images import image_size
from taast_ray.data.labelstudio import recorded_size, task_boxes
from taast_ray.data.yolo import _link, write_dataset_yaml, yolo_line
from taast_ray.errors import InputError
from taast_ray.io import write_json

FORMATS = ("coco", "yolo", "labelstudio")


def read_selection(folder: str | Path) -> tuple[list[dict], list[dict]]:
    """(tasks, categories) of a selection's output folder."""
    folder = Path(folder)
    tasks_file, pseudo_file = folder / "label_studio_tasks.json", folder / "pseudo_labels.json"
    for f in (tasks_file, pseudo_file):
        if not f.is_file():
            raise InputError(f"{folder}: not a selection output folder (no {f.name})")
    return json.loads(tasks_file.read_text()), json.loads(pseudo_file.read_text())["categories"]


def task_size(task: dict) -> tuple[int, int]:
    return recorded_size(task) or image_size(task["data"]["image"])


def selection_to_coco(tasks: list[dict], categories: list[dict]) -> dict:
    ids = {str(c["name"]): c["id"] for c in categories}
    images, annotations = [], []
    for n, task in enumerate(tasks, 1):
        width, height = task_size(task)
        data = task["data"]
        images.append({"id": n, "file_name": data["image_id"], "width": width, "height": height,
                       "taast_image_id": data["image_id"], "coco_url": data["image"]})
        for label, bbox, score in task_boxes(task, width, height):
            annotations.append({"id": len(annotations) + 1, "image_id": n, "category_id": ids[label],
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0,
                                **({"score": score} if score is not None else {})})
    return {"info": {"description": "taast selection: images to annotate, detector boxes as pre-annotations"},
            "images": images, "annotations": annotations, "categories": categories}


def _flat(image_id: str) -> str:
    return image_id.lstrip("/").replace("/", "__")


def selection_to_yolo(tasks: list[dict], categories: list[dict], out: Path) -> Path:
    cats = sorted(categories, key=lambda c: c["id"])
    index = {str(c["name"]): k for k, c in enumerate(cats)}
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for task in tasks:
        data = task["data"]
        if "://" in str(data["image"]):
            raise InputError(f"--format yolo: {data['image']} is not a local file; export coco or labelstudio")
        width, height = task_size(task)
        name = _flat(data["image_id"])
        _link(Path(data["image"]), out / "images" / name)
        lines = [yolo_line(b, width, height, index[label]) for label, b, _ in task_boxes(task, width, height)]
        (out / "labels" / Path(name).with_suffix(".txt")).write_text("".join(f"{l}\n" for l in lines if l))
    spec = write_dataset_yaml(out, [], [c["name"] for c in cats])
    text = spec.read_text() + "train: images\nval: images\n"
    spec.write_text(text)
    return spec


def export_selection(folder: str | Path, fmt: str, out: str | Path, image_url: str | None = None) -> dict:
    if fmt not in FORMATS:
        raise InputError(f"--format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    tasks, categories = read_selection(folder)
    out = Path(out)
    if fmt == "labelstudio":
        if image_url:
            tasks = [{**t, "data": {**t["data"], "image": image_url + t["data"]["image_id"]}} for t in tasks]
        write_json(out, tasks)
    elif fmt == "coco":
        write_json(out, selection_to_coco(tasks, categories))
    else:
        selection_to_yolo(tasks, categories, out)
    boxes = sum(len(r.get("result") or []) for t in tasks for r in t.get("predictions") or [])
    return {"images": len(tasks), "pre_annotations": boxes, "out": str(out)}
