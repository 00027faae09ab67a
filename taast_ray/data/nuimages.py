"""nuImages → COCO/LVIS JSON, so a nuImages split runs through `taast run` / `taast experiment`.

nuImages (nuscenes-devkit ``docs/schema_nuimages.md``) is a relational set of JSON tables per
version folder (``v1.0-train``, ``v1.0-val``, ...). Only key-frame camera images are annotated;
each foreground object has an amodal box ``[xmin, ymin, xmax, ymax]`` in ``object_ann``. The
converter keeps those key frames as images (``file_name`` relative to the nuImages root, the
folder that holds ``samples/``), every foreground category as a category (ids by sorted name,
so every split of a release gets the same ids), and each box as an annotation.

LVIS groups classes by their training images (r ≤ 10, c ≤ 100, f above). Converting the train
split computes them; pass the converted train file as ``frequency_from`` when converting val or
test so their categories carry the training split's tags, as LVISEval reads them from the
ground truth it scores.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from taast_ray.data.frequency import lvis_tag
from taast_ray.errors import InputError
from taast_ray.io import read_document

TABLES = ("category", "sample", "sample_data", "object_ann")


def _table(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.json"
    rows = read_document(path, f"nuImages table not found (is {folder} a version folder such as v1.0-train?)")
    if not isinstance(rows, list):
        raise InputError(f"{path}: expected a list of records")
    return rows


def nuimages_to_coco(root: str | Path, version: str, *, frequency_from: str | Path | None = None) -> dict:
    """The LVIS-style label file of one nuImages version folder under ``root``."""
    folder = Path(root) / version
    category, sample, sample_data, object_ann = (_table(folder, t) for t in TABLES)
    by_token = {sd["token"]: sd for sd in sample_data}
    keys = sorted((by_token[s["key_camera_token"]] for s in sample if s.get("key_camera_token") in by_token),
                  key=lambda sd: sd["filename"])
    image_id = {sd["token"]: i for i, sd in enumerate(keys, start=1)}
    used = {a["category_token"] for a in object_ann}
    names = {c["token"]: c["name"] for c in category}
    unknown = used - set(names)
    if unknown:
        raise InputError(f"{folder / 'object_ann.json'}: category_token {sorted(unknown)[0]} is not in category.json")
    foreground = sorted({names[t] for t in used} | _object_names(category, used))
    cat_id = {name: i for i, name in enumerate(foreground, start=1)}
    annotations, holding = [], defaultdict(set)
    for n, a in enumerate(sorted(object_ann, key=lambda a: a["token"]), start=1):
        if a["sample_data_token"] not in image_id:
            raise InputError(f"{folder / 'object_ann.json'}: record {a['token']} points to sample_data "
                             f"{a['sample_data_token']}, which is not a key-frame image of this version")
        x0, y0, x1, y1 = (float(v) for v in a["bbox"])
        if x1 <= x0 or y1 <= y0:
            raise InputError(f"{folder / 'object_ann.json'}: record {a['token']} has an empty box {a['bbox']}")
        img, cid = image_id[a["sample_data_token"]], cat_id[names[a["category_token"]]]
        holding[cid].add(img)
        annotations.append({"id": n, "image_id": img, "category_id": cid, "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    tags = _tags(frequency_from) if frequency_from else {}
    categories = [{"id": cid, "name": name, "image_count": len(holding[cid]),
                   # a class the training split never shows is rare, as in LVIS
                   "frequency": tags.get(name, "r") if frequency_from else lvis_tag(len(holding[cid]))}
                  for name, cid in cat_id.items()]
    images = [{"id": image_id[sd["token"]], "file_name": sd["filename"], "width": int(sd["width"]),
               "height": int(sd["height"]), "token": sd["token"]} for sd in keys]
    return {"info": {"description": f"nuImages {version}, key frames, converted by taast-ray"},
            "images": images, "annotations": annotations, "categories": categories, "licenses": []}


def _object_names(category: list[dict], used: set[str]) -> set[str]:
    """Foreground classes the split happens not to use, so every split has the same categories:
    nuImages' surface classes are ``flat.*`` and never have boxes."""
    return {c["name"] for c in category if c["token"] not in used and not c["name"].startswith("flat.")}


def _tags(path: str | Path) -> dict[str, str]:
    data = json.loads(Path(path).read_text())
    return {c["name"]: c["frequency"] for c in data["categories"] if "frequency" in c}
