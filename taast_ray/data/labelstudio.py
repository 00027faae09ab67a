"""The Label Studio format, in one place: the tasks a selection sends, the labelling config they
fit, and the exports that come back.

Tasks out: one per selected image, ``data`` = {image, image_id, rank, fill, score,
candidate_class, candidate_category_id}, the detector's boxes as ``predictions`` of type
``rectanglelabels`` from the control ``label`` onto the image ``image``, in percent of the image
(x = 100 · x_px / width), with ``original_width``/``original_height``. The labelling config
(:func:`label_config`) names those controls and every category, so a project made from it shows
the predictions.

Exports in: the JSON export (a list of tasks) or JSON_MIN, as COCO for the selected images, on
:mod:`taast_ray.data.annotations`' matching and box rules. A task is matched by ``data.image_id``
(ours), else ``data.image`` (the URI we sent, or a URL ending in the image_id); its latest
annotation that was not cancelled counts; a ``rectanglelabels`` result is in percent of the image:
x_px = x / 100 · width. A task with an annotation whose result is empty is labelled, with no
objects; a task whose every annotation was cancelled was skipped (it goes back to the pool). A
task of an image this cycle did not select (one project across cycles) is counted and left out.
An export is checked whole first, on :mod:`taast_ray.schemas.json_files` (its form, and every box
label a category of the run); what is left here is the matching and what this tool supports.

JSON_MIN: one flat record per annotation, the task's data fields at the top level beside ``id``
(the task's), ``annotation_id``, ``created_at`` …, and each control's results under its name as a
list of values (``{"x", "y", "width", "height", "rectanglelabels", …}``), as label-studio-sdk's
``convert_to_json_min`` writes them. A task nobody annotated is a record with ``annotation_id``
null and no results. The records become tasks of the full export (``json_min_to_tasks``), so every
rule above holds for both.

Zip exports come as Label Studio writes them: COCO (``result.json`` beside ``images/``) is read
from inside the zip; YOLO (``classes.txt``, ``labels/<image stem>.txt``, read by the YOLO import's
own line parser) is matched to the selected images by file stem (an uploaded file's ``<hash>-``
prefix allowed) and converted to pixels.
"""
from __future__ import annotations

import json
import posixpath
import zipfile
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import quoteattr

from taast_ray.schemas.json_files import BOX_TYPE, JSON_MIN_EXPORT, LABEL_STUDIO_EXPORT, is_box_list, parse
from taast_ray.data.annotations import ImageMatcher, add_box, finish_doc, new_doc, recorded_or_measured_size
from taast_ray.data.yolo_import import parse_label_lines
from taast_ray.errors import InputError

FROM_NAME = "label"          # the RectangleLabels control of the labelling config
TO_NAME = "image"            # its Image object, fed by the task's data.image
MODEL_VERSION = "taast-ray"  # the predictions' model_version


def box_result(xyxy, label: str, score: float, width: float, height: float) -> dict:
    """One pre-annotated box: pixels (x1, y1, x2, y2) → Label Studio's percent of the image."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return {"from_name": FROM_NAME, "to_name": TO_NAME, "type": BOX_TYPE,
            "original_width": int(width), "original_height": int(height), "score": float(score),
            "value": {"x": 100 * x1 / width, "y": 100 * y1 / height, "width": 100 * (x2 - x1) / width,
                      "height": 100 * (y2 - y1) / height, BOX_TYPE: [label]}}


def task(data: dict, boxes: list[dict] | None) -> dict:
    """A task; ``boxes`` (box_result rows) become its predictions, None where sizes are unknown."""
    out = {"data": data}
    if boxes is not None:
        out["predictions"] = [{"model_version": MODEL_VERSION, "result": boxes}]
    return out


def label_config(category_names: list[str]) -> str:
    """The labelling config the tasks fit: their control and object names, every category."""
    labels = "\n".join(f"    <Label value={quoteattr(str(n))}/>" for n in category_names)
    return (f"<View>\n  <Image name={quoteattr(TO_NAME)} value=\"$image\"/>\n"
            f"  <RectangleLabels name={quoteattr(FROM_NAME)} toName={quoteattr(TO_NAME)}>\n{labels}\n"
            f"  </RectangleLabels>\n</View>\n")


def recorded_size(task: dict) -> tuple[int, int] | None:
    """(width, height) a task's pre-annotations record, or None when it has none."""
    for p in task.get("predictions") or []:
        for r in p.get("result") or []:
            if r.get("original_width") and r.get("original_height"):
                return int(r["original_width"]), int(r["original_height"])
    return None


def task_boxes(task: dict, width: int, height: int) -> list[tuple[str, list[float], float | None]]:
    """(label, COCO [x, y, w, h] pixels, score) of a task's pre-annotations."""
    out = []
    for p in task.get("predictions") or []:
        for r in p.get("result") or []:
            if r.get("type") != BOX_TYPE:
                continue
            v = r["value"]
            out.append((v[BOX_TYPE][0], [v["x"] / 100 * width, v["y"] / 100 * height,
                                         v["width"] / 100 * width, v["height"] / 100 * height],
                        r.get("score")))
    return out


def _latest(annotations: list) -> dict | None:
    kept = [a for a in annotations or [] if not a.get("was_cancelled")]
    if not kept:
        return None
    return max(enumerate(kept), key=lambda p: (str(p[1].get("updated_at") or p[1].get("created_at") or ""), p[0]))[1]


def _skipped(task: dict) -> bool:
    """Every annotation cancelled (Label Studio's "Skip"); a task with none was not labelled yet."""
    annotations = task.get("annotations") or []
    return bool(annotations) and all(a.get("was_cancelled") for a in annotations)


JSON_MIN_META = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement",
                 "history", "was_cancelled")


def is_json_min(records: list) -> bool:
    """A JSON_MIN export: flat records (no ``data`` object) carrying ``annotation_id``."""
    return bool(records) and all(isinstance(r, dict) and "data" not in r and "annotation_id" in r
                                 for r in records)


def json_min_to_tasks(records: list[dict]) -> list[dict]:
    """JSON_MIN records → tasks of the full export: one task per task id, one annotation per record."""
    tasks: dict = {}
    for n, r in enumerate(records):
        controls = [k for k, v in r.items() if k not in JSON_MIN_META and is_box_list(v)]
        data = {k: v for k, v in r.items() if k not in JSON_MIN_META and k not in controls}
        key = r.get("id", f"#{n}")
        task = tasks.setdefault(key, {"id": key, "data": data, "annotations": []})
        if r.get("annotation_id") is None and not controls:
            continue  # exported unannotated
        task["annotations"].append({
            "result": [{"type": BOX_TYPE, "from_name": k, "value": v} for k in controls for v in r[k]],
            "created_at": r.get("created_at"), "updated_at": r.get("updated_at"),
            "was_cancelled": bool(r.get("was_cancelled"))})
    return list(tasks.values())


def label_studio_to_coco(tasks, selected: dict[str, dict], categories: list[dict], source: str,
                         size_of: Callable[[str], tuple[int, int]]) -> tuple[dict, list[str]]:
    """A Label Studio export (JSON or JSON_MIN), validated whole first (its schema, the run's
    categories as the box labels), as COCO for the selected images."""
    by_name = {str(c["name"]): c["id"] for c in categories}
    context = {"category_names": by_name}
    if is_json_min(tasks):
        parse(JSON_MIN_EXPORT, tasks, source, context)
        tasks = json_min_to_tasks(tasks)
    else:
        parse(LABEL_STUDIO_EXPORT, tasks, source, context)
    match = ImageMatcher(selected)
    doc, found, first_task, skipped, others = new_doc(categories), {}, {}, [], 0
    for i, task in enumerate(tasks):
        data, name = task["data"], f"task {task.get('id', f'#{i}')}"
        key = match(data.get("image_id"), data.get("image"))
        if key is None:  # an earlier cycle's task in the same project, or an image never selected
            others += 1
            continue
        if key in first_task:
            raise InputError(f"{source}: {name}: image {key!r} is also in {first_task[key]}")
        first_task[key] = name
        annotation = _latest(task.get("annotations"))
        if annotation is None:
            if _skipped(task):
                skipped.append(key)
            continue  # not labelled yet: missing
        width, height = recorded_or_measured_size(key, selected, size_of)
        image_id = len(found) + 1
        found[key] = {"id": image_id, "file_name": key, "width": width, "height": height,
                      "taast_image_id": key}
        for r in annotation.get("result") or []:
            if r["type"] != BOX_TYPE:
                continue  # choices, text areas ...: not boxes
            value, where = r["value"], f"{source}: {name}"
            if abs(value.get("rotation") or 0) > 1e-6:  # the schema's checks are of form, this one of support
                raise InputError(f"{where}: rotated rectangles ({value['rotation']} degrees) are not supported")
            x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
            add_box(doc, image_id, by_name[value[BOX_TYPE][0]],
                     [x / 100 * width, y / 100 * height, w / 100 * width, h / 100 * height], width, height, where)
    return finish_doc(doc, list(selected), found, skipped=skipped, not_selected=others)


def read_export(path: str | Path):
    """What an annotation tool exported: parsed JSON (Label Studio tasks, JSON_MIN or COCO), or
    from a zip export, COCO's ``result.json`` or a :class:`YoloExport`; one line naming the file
    where it is none of them."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: labels file not found")
    if not zipfile.is_zipfile(path):
        from taast_ray.data.labels import read_labels_json

        return read_labels_json(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            json_files = [n for n in names if posixpath.basename(n) == "result.json"]
            if json_files:
                return json.loads(z.read(json_files[0]))
            classes = [n for n in names if posixpath.basename(n) == "classes.txt"]
            labels = [n for n in names if n.endswith(".txt") and posixpath.basename(posixpath.dirname(n)) == "labels"]
            if classes:
                return YoloExport([c.strip() for c in z.read(classes[0]).decode().splitlines() if c.strip()],
                                  {posixpath.splitext(posixpath.basename(n))[0]: z.read(n).decode()
                                   for n in labels})
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path}: unreadable zip export ({exc})") from None
    raise InputError(f"{path}: a zip export holding neither result.json (COCO) nor classes.txt and "
                     f"labels/ (YOLO); it holds {', '.join(names[:5]) or 'nothing'}")


class YoloExport:
    """Label Studio's YOLO export: class names in index order, label text per image file stem."""

    def __init__(self, classes: list[str], labels: dict[str, str]):
        self.classes, self.labels = classes, labels


def _stem_matcher(selected: dict[str, dict]):
    stems: dict[str, list[str]] = {}
    for k, v in selected.items():
        for name in {k, str(v.get("uri") or k)}:
            stems.setdefault(posixpath.splitext(posixpath.basename(name))[0], []).append(k)
    unique = {s: sorted(set(ks))[0] for s, ks in stems.items() if len(set(ks)) == 1}

    def match(stem: str) -> str | None:
        if stem in unique:
            return unique[stem]
        head, sep, rest = stem.partition("-")  # an upload: <8 hex>-<original name>
        return unique.get(rest) if sep and len(head) == 8 else None
    return match


def yolo_export_to_coco(export: YoloExport, selected: dict[str, dict], categories: list[dict], source: str,
                        size_of: Callable[[str], tuple[int, int]]) -> tuple[dict, list[str]]:
    """A YOLO export's label files → COCO for the selected images (an empty file: labelled, no
    objects; a selected image without one: missing; a file of another image: counted, left out)."""
    by_name = {str(c["name"]): c["id"] for c in categories}
    unknown = [c for c in export.classes if c not in by_name]
    if unknown:
        raise InputError(f"{source}: label {unknown[0]!r} (classes.txt) is not a category of this run "
                         f"({', '.join(sorted(by_name))})")
    match, doc, found, others = _stem_matcher(selected), new_doc(categories), {}, 0
    for stem, text in sorted(export.labels.items()):
        key = match(stem)
        if key is None:
            others += 1
            continue
        width, height = recorded_or_measured_size(key, selected, size_of)
        found[key] = {"id": len(found) + 1, "file_name": key, "width": width, "height": height,
                      "taast_image_id": key}
        where = f"{source}: labels/{stem}.txt"
        for k, bbox in parse_label_lines(text, where, width, height, len(export.classes)):
            add_box(doc, found[key]["id"], by_name[export.classes[k]], bbox, width, height, where)
    return finish_doc(doc, list(selected), found, not_selected=others)
