"""What annotators send back, as COCO for the selected images: a Label Studio JSON export of the
tasks we sent, or a COCO file.

``selected`` maps each selected image_id to ``{"uri", "width", "height"}``; ``size_of(image_id)``
gives an image's (width, height) where the selection did not record it. Both converters return
``(doc, missing)``: a COCO document whose images carry ``taast_image_id`` (ids 1..n, in selection
order, ``file_name`` = the image_id) and the selected image_ids nobody labelled.

Label Studio: a task is matched by ``data.image_id`` (ours), else ``data.image`` (the URI we sent,
or a URL ending in the image_id); its latest annotation that was not cancelled counts; a
``rectanglelabels`` result is in percent of the image: x_px = x / 100 · width. A task with an
annotation whose result is empty is labelled, with no objects. COCO: an image is matched by
``taast_image_id``, its id, its ``file_name`` (the image_id, the URI, or a path ending in the
image_id, or a unique base name); categories by name when every name is the run's, else by id.

Label Studio's JSON_MIN export is read too: one flat record per annotation, the task's data fields
at the top level beside ``id`` (the task's), ``annotation_id``, ``created_at`` …, and each
control's results under its name as a list of values (``{"x", "y", "width", "height",
"rectanglelabels", …}``), as label-studio-sdk's ``convert_to_json_min`` writes them. A task nobody
annotated is a record with ``annotation_id`` null and no results. The records become tasks of the
full export (``json_min_to_tasks``), so every rule above holds for both.
"""
from __future__ import annotations

import math
import posixpath
from typing import Callable

from taast_ray.errors import InputError


class _Matcher:
    """image_id of a selected image from whatever name an annotation tool kept for it."""

    def __init__(self, selected: dict[str, dict]):
        self.ids = selected
        self.by_uri = {str(v["uri"]): k for k, v in selected.items() if v.get("uri")}
        names: dict[str, list[str]] = {}
        for k in selected:
            names.setdefault(posixpath.basename(k), []).append(k)
        self.by_base = {b: ks[0] for b, ks in names.items() if len(ks) == 1}

    def __call__(self, *names) -> str | None:
        for name in (str(n) for n in names if n not in (None, "")):
            if name in self.ids:
                return name
            if name in self.by_uri:
                return self.by_uri[name]
            clean = name.split("?d=", 1)[-1]  # Label Studio local-files URLs: /data/local-files/?d=PATH
            hit = next((k for k in self.ids if clean.endswith("/" + k) or clean == k), None)
            if hit is not None:
                return hit
            base = posixpath.basename(clean)
            if base in self.by_base:
                return self.by_base[base]
        return None


def _new_doc(categories: list[dict]) -> dict:
    return {"info": {"description": "annotations ingested by taast"}, "images": [], "annotations": [],
            "categories": categories}


def _add_box(doc: dict, image_id: int, category_id: int, bbox: list[float], width: int, height: int,
             where: str) -> None:
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        raise InputError(f"{where}: box {bbox} is not four finite numbers")
    x0, y0 = max(bbox[0], 0.0), max(bbox[1], 0.0)
    x1, y1 = min(bbox[0] + bbox[2], width), min(bbox[1] + bbox[3], height)
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"{where}: box {[round(v, 2) for v in bbox]} has no area inside the "
                         f"{width}x{height} image")
    doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": image_id,
                               "category_id": category_id, "bbox": [x0, y0, x1 - x0, y1 - y0],
                               "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})


def _finish(doc: dict, order: list[str], found: dict) -> tuple[dict, list[str]]:
    """Images in selection order, ids 1..n; the selected images nobody labelled."""
    rank = {k: n for n, k in enumerate(order)}
    keys = sorted(found, key=lambda k: rank[k])
    renumber = {found[k]["id"]: n + 1 for n, k in enumerate(keys)}
    doc["images"] = [{**found[k], "id": renumber[found[k]["id"]]} for k in keys]
    for a in doc["annotations"]:
        a["image_id"] = renumber[a["image_id"]]
    doc["annotations"].sort(key=lambda a: (a["image_id"], a["id"]))
    for n, a in enumerate(doc["annotations"]):
        a["id"] = n + 1
    return doc, [k for k in order if k not in found]


def _size(key: str, selected: dict, size_of) -> tuple[int, int]:
    info = selected[key]
    if info.get("width") and info.get("height"):
        return int(info["width"]), int(info["height"])
    return size_of(key)


def _latest(annotations: list) -> dict | None:
    kept = [a for a in annotations or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return None
    return max(enumerate(kept), key=lambda p: (str(p[1].get("updated_at") or p[1].get("created_at") or ""), p[0]))[1]


JSON_MIN_META = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement",
                 "history", "was_cancelled")


def is_json_min(records: list) -> bool:
    """A JSON_MIN export: flat records (no ``data`` object) carrying ``annotation_id``."""
    return bool(records) and all(isinstance(r, dict) and "data" not in r and "annotation_id" in r
                                 for r in records)


def _boxes(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and "rectanglelabels" in v for v in value)


def json_min_to_tasks(records: list[dict]) -> list[dict]:
    """JSON_MIN records → tasks of the full export: one task per task id, one annotation per record."""
    tasks: dict = {}
    for n, r in enumerate(records):
        controls = [k for k, v in r.items() if k not in JSON_MIN_META and _boxes(v)]
        data = {k: v for k, v in r.items() if k not in JSON_MIN_META and k not in controls}
        key = r.get("id", f"#{n}")
        task = tasks.setdefault(key, {"id": key, "data": data, "annotations": []})
        if r.get("annotation_id") is None and not controls:
            continue  # exported unannotated
        task["annotations"].append({
            "result": [{"type": "rectanglelabels", "from_name": k, "value": v} for k in controls for v in r[k]],
            "created_at": r.get("created_at"), "updated_at": r.get("updated_at"),
            "was_cancelled": bool(r.get("was_cancelled"))})
    return list(tasks.values())


def label_studio_to_coco(tasks, selected: dict[str, dict], categories: list[dict], source: str,
                         size_of: Callable[[str], tuple[int, int]]) -> tuple[dict, list[str]]:
    if not isinstance(tasks, list):
        raise InputError(f"{source}: a Label Studio export is a JSON list of tasks")
    if is_json_min(tasks):
        tasks = json_min_to_tasks(tasks)
    match, by_name = _Matcher(selected), {str(c["name"]): c["id"] for c in categories}
    doc, found, first_task = _new_doc(categories), {}, {}
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InputError(f"{source}: task #{i} has no 'data' object")
        data, name = task["data"], f"task {task.get('id', f'#{i}')}"
        key = match(data.get("image_id"), data.get("image"))
        if key is None:
            raise InputError(f"{source}: {name}: image {data.get('image_id') or data.get('image')!r} "
                             f"is not one of the selected images")
        if key in first_task:
            raise InputError(f"{source}: {name}: image {key!r} is also in {first_task[key]}")
        first_task[key] = name
        annotation = _latest(task.get("annotations"))
        if annotation is None:
            continue  # not labelled yet (or every annotation cancelled): missing
        width, height = _size(key, selected, size_of)
        image_id = len(found) + 1
        found[key] = {"id": image_id, "file_name": key, "width": width, "height": height,
                      "taast_image_id": key}
        for r in annotation.get("result") or []:
            if not isinstance(r, dict) or r.get("type") != "rectanglelabels":
                continue  # choices, text areas ...: not boxes
            value, where = r.get("value") or {}, f"{source}: {name}"
            labels = value.get("rectanglelabels") or []
            if len(labels) != 1:
                raise InputError(f"{where}: a rectangle needs exactly one label, got {labels}")
            if labels[0] not in by_name:
                raise InputError(f"{where}: label {labels[0]!r} is not a category of this run "
                                 f"({', '.join(sorted(by_name))})")
            if abs(float(value.get("rotation") or 0)) > 1e-6:
                raise InputError(f"{where}: rotated rectangles ({value['rotation']} degrees) are not supported")
            try:
                x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{where}: rectangle without numeric x, y, width, height") from None
            _add_box(doc, image_id, by_name[labels[0]],
                     [x / 100 * width, y / 100 * height, w / 100 * width, h / 100 * height], width, height, where)
    return _finish(doc, list(selected), found)


def _category_map(theirs: list[dict], ours: list[dict], source: str) -> dict:
    our_names = {str(c.get("name")): c["id"] for c in ours}
    if theirs and all(str(c.get("name")) in our_names for c in theirs):
        return {c["id"]: our_names[str(c["name"])] for c in theirs}
    our_ids = {c["id"] for c in ours}
    for c in theirs:
        if c["id"] not in our_ids:
            raise InputError(f"{source}: category {c['id']} ({c.get('name')!r}) is not a category of this run")
    return {c["id"]: c["id"] for c in theirs}


def coco_to_selected(labels, selected: dict[str, dict], categories: list[dict], source: str,
                     size_of: Callable[[str], tuple[int, int]]) -> tuple[dict, list[str]]:
    """``labels``: a validated :class:`~taast_ray.data.labels.LabelSet` of what came back."""
    match, cats = _Matcher(selected), _category_map(labels.categories, categories, source)
    doc, found, local = _new_doc(categories), {}, {}
    for img in labels.images:
        key = match(img.get("taast_image_id"), img["id"], img.get("file_name"), img.get("coco_url"))
        if key is None:
            raise InputError(f"{source}: image {img['id']} ({img.get('file_name')!r}) is not one of the "
                             f"selected images")
        if key in found:
            raise InputError(f"{source}: images {found[key]['source_id']} and {img['id']} are both {key!r}")
        width, height = _size(key, selected, size_of)
        if img.get("width") and img.get("height") and (int(img["width"]), int(img["height"])) != (width, height):
            raise InputError(f"{source}: image {img['id']} is {img['width']}x{img['height']} in the file "
                             f"but {width}x{height} on disk ({key})")
        found[key] = {"id": len(found) + 1, "file_name": key, "width": width, "height": height,
                      "taast_image_id": key, "source_id": img["id"]}
        local[img["id"]] = found[key]["id"]
    by_local = {v["id"]: v for v in found.values()}
    for a in labels.annotations:
        if a.get("iscrowd"):
            continue
        img = by_local[local[a["image_id"]]]
        _add_box(doc, img["id"], cats[a["category_id"]], [float(v) for v in a["bbox"]], img["width"],
                 img["height"], f"{source}: annotation {a.get('id')}")
    for v in found.values():
        v.pop("source_id")
    return _finish(doc, list(selected), found)
