"""``taast export SELECTION_DIR --format coco|yolo|labelstudio --out F``: the B selected images for
the annotation tool, with the detector's boxes as pre-annotations.

Reads what every selection publishes (``label_studio_tasks.json``: the tasks in rank order, the
boxes in percent of the image; ``pseudo_labels.json``: the categories). ``labelstudio`` writes the
tasks and, beside them, ``label_config.xml``, the labelling config whose control names and labels
match them. Each task's ``data.image`` is one Label Studio can serve: ``--image-url PREFIX`` gives
PREFIX + image_id (a server of your own); ``--document-root DIR`` gives Label Studio's local-files
form, ``/data/local-files/?d=<path under DIR>``, which needs local file serving and a Local Storage
covering the folder (said in the next steps); an ``s3://`` / ``gs://`` URI stays as it is, for
Label Studio's cloud storage. A plain filesystem path, which Label Studio cannot serve, is kept with
a warning. ``coco`` an images + pre-annotations file (boxes with their
``score``, ``taast_image_id`` on every image); ``yolo`` a folder: images/ (links), labels/ and
dataset.yaml, the boxes as label lines for a tool that starts from YOLO labels.
"""
from __future__ import annotations

from pathlib import Path

from taast_ray.schemas.json_files import SELECTION_CATEGORIES, SELECTION_TASKS, parse
from taast_ray.data.images import image_size
from taast_ray.data.labelstudio import label_config, recorded_size, task_boxes
from taast_ray.data.yolo import _link, write_dataset_yaml, yolo_line
from taast_ray.errors import InputError
from taast_ray.io import atomic_path, new_parents, write_folder_manifest, write_json, write_text

FORMATS = ("coco", "yolo", "labelstudio")


def read_selection(folder: str | Path) -> tuple[list[dict], list[dict]]:
    """(tasks, categories) of a selection's output folder."""
    folder = Path(folder)
    tasks_file, pseudo_file = folder / "label_studio_tasks.json", folder / "pseudo_labels.json"
    for f in (tasks_file, pseudo_file):
        if not f.is_file():
            raise InputError(f"{folder}: not a selection output folder (no {f.name})")
    from taast_ray.data.labels import read_labels_json

    tasks, pseudo = read_labels_json(tasks_file), read_labels_json(pseudo_file)
    parse(SELECTION_CATEGORIES, pseudo, str(pseudo_file))
    parse(SELECTION_TASKS, tasks, str(tasks_file), {"category_names": {c["name"] for c in pseudo["categories"]}})
    return tasks, pseudo["categories"]


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
    """The YOLO folder, built beside ``out`` and moved into place whole: a selected image that is
    gone (or any other failure) leaves ``out`` as it was."""
    import shutil
    import tempfile

    with new_parents(out):  # a refused export leaves no folder it made for ``out``
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
        try:
            _write_yolo(tasks, categories, staging)
            write_folder_manifest(staging)  # the last file written: a folder without it is not a set
            old = None
            if out.exists():
                old = out.with_name(f".{out.name}.old-{staging.name.rsplit('-', 1)[-1]}")
                out.rename(old)
            staging.rename(out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out / "dataset.yaml"


def _write_yolo(tasks: list[dict], categories: list[dict], out: Path) -> Path:
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


LOCAL_FILES = "/data/local-files/?d="  # Label Studio's URL for a file under LOCAL_FILES_DOCUMENT_ROOT


def image_references(tasks: list[dict], image_url: str | None, document_root: str | Path | None
                     ) -> tuple[list[dict], str, str]:
    """The tasks with ``data.image`` as Label Studio will fetch it, which form that is, and what the
    Label Studio side needs for it."""
    if image_url and document_root:
        raise InputError("--image-url and --document-root: give one of them")
    if image_url:
        return ([{**t, "data": {**t["data"], "image": image_url + t["data"]["image_id"]}} for t in tasks],
                "url-prefix", f"every image must be served at {image_url}<image_id>")
    if document_root:
        root = Path(document_root).resolve()
        out = []
        for t in tasks:
            path = Path(str(t["data"]["image"]))
            if "://" in str(t["data"]["image"]) or not path.resolve().is_relative_to(root):
                raise InputError(f"--document-root {root}: image {t['data']['image']!r} of task "
                                 f"{t['data']['image_id']!r} is not under it")
            out.append({**t, "data": {**t["data"], "image": LOCAL_FILES + path.resolve().relative_to(root).as_posix()}})
        return out, "local-files", (
            f"start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
            f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root}, and add to the project a Local Storage whose "
            f"absolute path is a folder under {root} holding every image (Label Studio refuses the root "
            f"itself)")
    images = [str(t["data"]["image"]) for t in tasks]
    if images and all(i.startswith(("s3://", "gs://")) for i in images):
        return tasks, "object-store", ("connect the bucket to the project as Cloud Storage (source), "
                                       "with 'Treat every bucket object as a source file' off")
    return tasks, "filesystem-paths", ("Label Studio cannot serve filesystem paths: export again with "
                                       "--document-root DIR (local files) or --image-url PREFIX")


def export_selection(folder: str | Path, fmt: str, out: str | Path, image_url: str | None = None,
                     document_root: str | Path | None = None) -> dict:
    if fmt not in FORMATS:
        raise InputError(f"--format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt != "labelstudio" and (image_url or document_root):
        raise InputError("--image-url / --document-root: only for --format labelstudio")
    tasks, categories = read_selection(folder)
    out = Path(out)
    extra = {}
    if fmt == "labelstudio":
        tasks, refs, needs = image_references(tasks, image_url, document_root)
        config = out.parent / "label_config.xml"
        with atomic_path(config) as config_tmp, atomic_path(out) as tasks_tmp:  # both files or neither
            write_text(config_tmp, label_config([c["name"] for c in sorted(categories, key=lambda c: c["id"])]))
            write_json(tasks_tmp, tasks)
        extra = {"image_refs": refs, "label_studio_needs": needs, "label_config": str(config)}
    elif fmt == "coco":
        write_json(out, selection_to_coco(tasks, categories))
    else:
        selection_to_yolo(tasks, categories, out)
    boxes = sum(len(r.get("result") or []) for t in tasks for r in t.get("predictions") or [])
    return {"images": len(tasks), "pre_annotations": boxes, "out": str(out), **extra}
