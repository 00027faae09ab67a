"""``taast run`` on a team's own data: their L is L0, their pool is U, annotators label Q.

What only a team's own run needs, for the one loop (loop/cycle.py, through loop/sources.py):

    data: {labelled: L.json, pool: <folder | manifest | s3://...>, val: V.json, images: ROOT}
    data: {yolo: data.yaml}        # imported into RUN/data/imported/ first (data/yolo_import.py)

One image_id convention everywhere: the image's POSIX path relative to ``data.images`` (L's
``file_name``; a pool image under the root gets that id whatever the listing called it; one
outside keeps its listing id). Cycle t selects from the pool minus L and every image labelled
since, stops (:class:`AwaitingAnnotation`, exit code 3) until ``taast ingest`` stores the labels
(or ``RUN/cycle_t/annotations.json`` is found on resume), fine-tunes the current weights on
L ∪ Q ∪ P and evaluates when a validation set is given. Labelled images carry ``taast_image_id``;
integer ids are the run's own (L's kept, later images numbered after them). :class:`People` is
the label source of every run without the oracle, a simulation with ``protocol.simulate: false``
too.
"""
from __future__ import annotations

import os
import posixpath
from collections import Counter
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from taast_ray.config import TaastConfig
from taast_ray.console import say
from taast_ray.data.images import image_size
from taast_ray.errors import ConfigError, InputError
from taast_ray.io import is_uri, resolve, write_json, write_parquet
from taast_ray.loop.layout import IMPORT_STAGE, CycleLayout, RunLayout
from taast_ray.loop.stages import stage


class AwaitingAnnotation(Exception):
    """The run stops after a selection until `taast ingest` brings the labels (exit code 3)."""


def own_image_id(name: str, images: Path) -> str:
    """The image_id of a file named ``name`` (relative to the images root, or absolute)."""
    if "://" in name:
        return name
    path = Path(name)
    if path.is_absolute():
        return _under_root(path, images) or path.as_posix()
    return posixpath.normpath(path.as_posix())


def _under_root(path: Path, images: Path) -> str | None:
    """``path``'s POSIX path relative to the images root, or None when it lies outside it."""
    try:
        return path.resolve().relative_to(images.resolve()).as_posix()
    except ValueError:
        return None


def image_key(img: dict) -> str:
    return str(img.get("taast_image_id", img["id"]))


def own_paths(cfg: TaastConfig, layout: RunLayout, resume: bool) -> dict:
    """data.labelled / pool / val / images, from data.yolo imported into the run when given."""
    d = cfg.data
    if not d.yolo:
        return {"labelled": d.labelled, "pool": d.pool, "val": d.val, "test": d.test, "images": d.images}
    from taast_ray.data.yolo_import import import_yolo

    imported = layout.imported
    stage(layout.data, IMPORT_STAGE, resume, lambda: say(
        f"imported {d.yolo}: {import_yolo(d.yolo, imported)['pool']} pool images -> {imported}"))
    import yaml

    return yaml.safe_load((imported / "taast.yaml").read_text())["data"] | {
        "val": d.val or _imported(imported, "val"), "test": d.test or _imported(imported, "test")}


def _imported(imported: Path, split: str) -> str | None:
    return str(imported / f"{split}.json") if (imported / f"{split}.json").exists() else None


def prepare(paths: dict, layout: RunLayout) -> None:
    """L with an image_id on every image (and its size), and the pool minus L, keyed alike."""
    from taast_ray.data.labels import load_labels
    from taast_ray.stages.sources import list_pool_table

    images = Path(paths["images"])
    labels = load_labels(paths["labelled"]).raw
    for img in labels["images"]:
        if "file_name" not in img:
            raise InputError(f"{paths['labelled']}: image {img['id']} has no file_name")
        img["taast_image_id"] = own_image_id(str(img["file_name"]), images)
        if not (img.get("width") and img.get("height")):
            img["width"], img["height"] = image_size(images / img["file_name"])
    write_json(layout.labels_l0, labels)
    listing = list_pool_table(paths["pool"])
    ids = [_pool_id(i, u, images) for i, u in zip(listing.column("image_id").to_pylist(),
                                                  listing.column("uri").to_pylist())]
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise InputError(f"{paths['pool']}: two pool images are both {dup!r} relative to {images}")
    labelled = {image_key(i) for i in labels["images"]}
    keep = [n for n, i in enumerate(ids) if i not in labelled]
    table = pa.table({"image_id": pa.array([ids[n] for n in keep], pa.string()),
                      "uri": listing.column("uri").take(pa.array(keep, pa.int64()))})
    write_parquet(layout.pool, table.sort_by("image_id"))
    say(f"L: {len(labels['images'])} labelled images, {len(labels['annotations'])} boxes; pool: "
        f"{table.num_rows} images ({len(ids) - table.num_rows} of the listing already in L)")


def _pool_id(listed: str, uri: str | None, images: Path) -> str:
    if not uri or is_uri(uri):
        return listed
    return _under_root(Path(resolve(uri)[1]), images) or listed


def start_weights(cfg: TaastConfig, num_classes: int) -> bool:
    """Whether the run trains a warm-up on L: not when model.weights is a .pt with L's classes."""
    weights = cfg.model.weights
    if weights.lower().endswith((".yaml", ".yml")):
        if cfg.train.warmup_epochs < 1:
            raise ConfigError(f"train.warmup_epochs: {weights} starts from random weights; train it on L "
                              f"first (> 0 epochs) or give your own .pt in model.weights")
        return True
    from taast_ray.models.checks import check_detector

    classes = check_detector(weights, None)
    if classes == num_classes:
        return False
    if cfg.train.warmup_epochs < 1:
        raise ConfigError(f"train.warmup_epochs: {weights} has {classes} classes, L has {num_classes}; "
                          f"a warm-up on L (> 0 epochs) fits it to them")
    return True


def localise(img: dict, uri: str | None, images: Path, cache: Path) -> dict:
    """The image's file_name for training: its id when it lies under the images root, else the
    local path; an object-store image is copied under ``cache`` first."""
    key = image_key(img)
    if uri and is_uri(uri):
        dest = cache / key.split("://", 1)[-1].lstrip("/")
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs, path = resolve(uri, per_bucket=True)
            with fs.open_input_stream(path) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        return {**img, "file_name": str(dest.resolve())}
    local = Path(resolve(uri)[1]) if uri else images / key
    if (images / key).exists() and os.path.samefile(images / key, local):
        return {**img, "file_name": key}
    return {**img, "file_name": str(local.resolve())}


def renumbered(base: dict, new: dict, uris: dict, images: Path, cache: Path) -> dict:
    """``new`` with ids after ``base``'s and training file names; images already in base dropped."""
    have = {image_key(i) for i in base["images"]}
    start = max((int(i["id"]) for i in base["images"]), default=0) + 1
    keep = [i for i in new["images"] if image_key(i) not in have]
    ids = {i["id"]: start + n for n, i in enumerate(keep)}
    return {**new, "images": [localise({**i, "id": ids[i["id"]]}, uris.get(image_key(i)), images, cache)
                              for i in keep],
            "annotations": [{**a, "image_id": ids[a["image_id"]]} for a in new["annotations"]
                            if a["image_id"] in ids]}


def await_labels(cycle: CycleLayout, run: Path, resume: bool) -> None:
    """The annotate stage without the oracle: done once the cycle's labels are ingested."""
    from taast_ray.loop.ingest import ingest_labels

    layout = RunLayout(run)

    def annotate():
        if cycle.labels_new.exists():
            return
        if cycle.dropped_labels.exists():
            ingest_labels(run, cycle.dropped_labels)
            return
        selected = pq.read_metadata(cycle.selection).num_rows
        raise AwaitingAnnotation(
            f"{cycle.dir.name}: {selected} images await annotation. For Label Studio: `taast export "
            f"{cycle.select} --format labelstudio --out tasks.json --document-root DIR` (or --image-url "
            f"PREFIX) writes tasks with the detector's boxes whose images Label Studio can serve, and "
            f"label_config.xml for the project (coco and yolo exports too). Then: `taast ingest --run {run} "
            f"--labels EXPORT` (Label Studio's JSON, JSON_MIN, COCO or YOLO export, zips as they come; "
            f"other cycles' tasks are left out; --partial to accept fewer) and "
            f"`taast run --config {layout.config} --out {run} --resume`")
    stage(cycle.dir, "annotate", resume, annotate)


@dataclass(frozen=True)
class People:
    """Annotators label a cycle's selection, through `taast ingest`; the run waits for them."""
    run: RunLayout
    truth = None  # what they will draw is not known before: no coverage truth, no tail

    def annotate(self, cycle: CycleLayout, resume: bool) -> None:
        await_labels(cycle, self.run.root, resume)
