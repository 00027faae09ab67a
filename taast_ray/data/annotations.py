"""What annotators send back, as COCO for the selected images: the shared matching and box rules,
and a COCO file (Label Studio's exports are :mod:`taast_ray.data.labelstudio`'s, on these rules).

``selected`` maps each selected image_id to ``{"uri", "width", "height"}``; ``size_of(image_id)``
gives an image's (width, height) where the selection did not record it. The converters return
``(doc, missing)``: a COCO document whose images carry ``taast_image_id`` (ids 1..n, in selection
order, ``file_name`` = the image_id) and the selected image_ids nobody labelled. Images of the
export that are not this cycle's selection (a project or file that also holds earlier cycles'
images) are left out and counted in ``doc["info"]["not_selected"]``; images the annotators
skipped are listed in ``doc["info"]["skipped"]`` and are not missing: they go back to the pool.

COCO: an image is matched by ``taast_image_id``, its id, its ``file_name`` (the image_id, the URI,
or a path ending in the image_id, or a unique base name); categories by name when every name is
the run's, else by id.
"""
from __future__ import annotations

import math
import posixpath
from typing import Callable

from taast_ray.errors import InputError


class ImageMatcher:
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


def new_doc(categories: list[dict]) -> dict:
    return {"info": {"description": "annotations ingested by taast"}, "images": [], "annotations": [],
            "categories": categories}


def add_box(doc: dict, image_id: int, category_id: int, bbox: list[float], width: int, height: int,
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


def finish_doc(doc: dict, order: list[str], found: dict, *, skipped=(), not_selected: int = 0
               ) -> tuple[dict, list[str]]:
    """Images in selection order, ids 1..n; the selected images nobody labelled (``skipped``
    ones aside: they are recorded, and return to the pool without counting as missing)."""
    skipped = set(skipped)
    doc["info"].update(skipped=[k for k in order if k in skipped], not_selected=int(not_selected))
    rank = {k: n for n, k in enumerate(order)}
    keys = sorted(found, key=lambda k: rank[k])
    renumber = {found[k]["id"]: n + 1 for n, k in enumerate(keys)}
    doc["images"] = [{**found[k], "id": renumber[found[k]["id"]]} for k in keys]
    for a in doc["annotations"]:
        a["image_id"] = renumber[a["image_id"]]
    doc["annotations"].sort(key=lambda a: (a["image_id"], a["id"]))
    for n, a in enumerate(doc["annotations"]):
        a["id"] = n + 1
    return doc, [k for k in order if k not in found and k not in skipped]


def recorded_or_measured_size(key: str, selected: dict, size_of) -> tuple[int, int]:
    info = selected[key]
    if info.get("width") and info.get("height"):
        return int(info["width"]), int(info["height"])
    return size_of(key)


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
    match, cats = ImageMatcher(selected), _category_map(labels.categories, categories, source)
    doc, found, local, others = new_doc(categories), {}, {}, 0
    for img in labels.images:
        key = match(img.get("taast_image_id"), img["id"], img.get("file_name"), img.get("coco_url"))
        if key is None:  # another cycle's image, or one this run never selected: counted, left out
            others += 1
            continue
        if key in found:
            raise InputError(f"{source}: images {found[key]['source_id']} and {img['id']} are both {key!r}")
        width, height = recorded_or_measured_size(key, selected, size_of)
        if img.get("width") and img.get("height") and (int(img["width"]), int(img["height"])) != (width, height):
            raise InputError(f"{source}: image {img['id']} is {img['width']}x{img['height']} in the file "
                             f"but {width}x{height} on disk ({key})")
        found[key] = {"id": len(found) + 1, "file_name": key, "width": width, "height": height,
                      "taast_image_id": key, "source_id": img["id"]}
        local[img["id"]] = found[key]["id"]
    by_local = {v["id"]: v for v in found.values()}
    for a in labels.annotations:
        if a.get("iscrowd") or a["image_id"] not in local:
            continue
        img = by_local[local[a["image_id"]]]
        add_box(doc, img["id"], cats[a["category_id"]], [float(v) for v in a["bbox"]], img["width"],
                 img["height"], f"{source}: annotation {a.get('id')}")
    for v in found.values():
        v.pop("source_id")
    return finish_doc(doc, list(selected), found, not_selected=others)
