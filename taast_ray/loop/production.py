"""``taast run`` on a team's own data: their L is L0, their pool is U, annotators label Q.

    data: {labelled: L.json, pool: <folder | manifest | s3://...>, val: V.json, images: ROOT}
    data: {yolo: data.yaml}        # imported into RUN/data/imported/ first (data/yolo_import.py)

One image_id convention everywhere: the image's POSIX path relative to ``data.images`` (L's
``file_name``; a pool image under the root gets that id whatever the listing called it; one
outside keeps its listing id). Cycle t selects from the pool minus L and every image labelled
since, stops (:class:`AwaitingAnnotation`, exit code 3) until ``taast ingest`` stores the labels
(or ``RUN/cycle_t/annotations.json`` is found on resume), fine-tunes the current weights on
L ∪ Q ∪ P and evaluates when a validation set is given. Labelled images carry ``taast_image_id``;
integer ids are the run's own (L's kept, later images numbered after them).
"""
from __future__ import annotations

import os
import posixpath
from collections import Counter
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from taast_ray.config import TaastConfig
from taast_ray.console import say
from taast_ray.data.images import image_size
from taast_ray.data.split import merge_labels
from taast_ray.errors import ConfigError, InputError
from taast_ray.io import read_json, write_json, write_parquet
from taast_ray.loop.layout import CycleLayout, RunLayout
from taast_ray.loop.stages import stage

PREPARE_STAGE = "prepare"
DROPPED_LABELS = "annotations.json"  # a cycle's labels left here are ingested on resume


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

    imported = layout.data / "imported"
    stage(layout.data, "import", resume, lambda: say(
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
    if not uri or ("://" in uri and not uri.startswith("file://")):
        return listed
    return _under_root(Path(uri.removeprefix("file://")), images) or listed


def start_weights(cfg: TaastConfig, num_classes: int) -> bool:
    """Whether the run trains a warm-up on L: not when model.weights is a .pt with L's classes."""
    weights = cfg.model.weights
    if weights.lower().endswith((".yaml", ".yml")):
        if cfg.train.warmup_epochs < 1:
            raise ConfigError(f"train.warmup_epochs: {weights} starts from random weights; train it on L "
                              f"first (> 0 epochs) or give your own .pt in model.weights")
        return True
    from taast_ray.models.checks import check_detector
    from taast_ray.models.detector import load_detection_model

    check_detector(weights, None)
    classes = int(load_detection_model(weights).model[-1].nc)
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
    if uri and "://" in uri and not uri.startswith("file://"):
        from taast_ray.stages.sources import _locate

        dest = cache / key.split("://", 1)[-1].lstrip("/")
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs, path = _locate(uri)
            with fs.open_input_stream(path) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        return {**img, "file_name": str(dest.resolve())}
    local = Path(uri.removeprefix("file://")) if uri else images / key
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
    from taast_ray.loop.cycle import AwaitingAnnotation
    from taast_ray.loop.ingest import ingest_labels

    def annotate():
        if cycle.labels_new.exists():
            return
        if (cycle.dir / DROPPED_LABELS).exists():
            ingest_labels(run, cycle.dir / DROPPED_LABELS)
            return
        selected = pq.read_metadata(cycle.selection).num_rows
        raise AwaitingAnnotation(
            f"{cycle.dir.name}: {selected} images await annotation. Label Studio tasks with the "
            f"detector's boxes: {cycle.label_studio_tasks} (or `taast export {cycle.select} --format "
            f"coco|yolo|labelstudio --out F`). Then: `taast ingest --run {run} --labels EXPORT.json` "
            f"(Label Studio JSON export or COCO; --partial to accept fewer) and "
            f"`taast run --config {run / 'config.yaml'} --out {run} --resume`")
    stage(cycle.dir, "annotate", resume, annotate)


def run_production(cfg: TaastConfig, layout: RunLayout, resume: bool) -> list[dict]:
    from taast_ray.evaluation.tail import format_own_class_table
    from taast_ray.loop.cycle import (Dataset, cycle_row, evaluate_weights, select_stage, train_and_evaluate,
                                      write_cycle_pool)

    paths = own_paths(cfg, layout, resume)
    stage(layout.data, PREPARE_STAGE, resume, lambda: prepare(paths, layout))
    images = Path(paths["images"])
    optional = {k: Path(paths[k]) if paths.get(k) else None for k in ("val", "test")}
    data = Dataset(Path(paths["labelled"]), optional["val"], optional["test"], images,
                   frequency_from=layout.labels_l0)
    labels_l0 = read_json(layout.labels_l0)
    say("classes of L (tag: the r/c/f group of APr/APc/APf, from L; L0 tag: < 10 images is rare):\n"
        + format_own_class_table(labels_l0, read_json(data.val) if data.val else None))
    warmup, labels_path = layout.warmup, layout.labels_l0
    rows = []
    if start_weights(cfg, len(labels_l0["categories"])):
        train_and_evaluate(cfg, data, labels_l0, None, cfg.model.weights, cfg.train.warmup_epochs, warmup, resume)
        weights = warmup.weights
        rows.append(cycle_row(warmup, labels_l0))
    else:
        weights = Path(cfg.model.weights)
        say(f"starting from {weights} (its classes are L's): no warm-up")
    cache = layout.data / "fetched"
    for t in range(1, cfg.protocol.cycles + 1):
        cycle = layout.cycle(t)
        labelled = {image_key(i) for i in read_json(labels_path)["images"]}
        stage(cycle.dir, "pool", resume, lambda: write_cycle_pool(layout.pool, labelled, cycle.pool))
        select_stage(cfg, cycle, labels_path, weights, resume, layout.embedding_cache, None)
        await_labels(cycle, layout.root, resume)
        base = read_json(labels_path)
        sel = pq.read_table(cycle.selection)
        uris = dict(zip(sel.column("image_id").to_pylist(),
                        sel.column("uri").to_pylist() if "uri" in sel.column_names else [None] * sel.num_rows))
        labels = merge_labels(base, renumbered(base, read_json(cycle.labels_new), uris, images, cache))
        write_json(cycle.labels, labels)
        pseudo = None
        if cfg.protocol.pseudo_labels:
            raw = read_json(cycle.pseudo_labels)
            pseudo_uris = {image_key(i): i["file_name"] for i in raw["images"]}
            pseudo = renumbered(labels, raw, pseudo_uris, images, cache)
        train_and_evaluate(cfg, data, labels, pseudo, str(weights), cfg.train.epochs, cycle, resume)
        rows.append(cycle_row(cycle, labels))
        labels_path, weights = cycle.labels, cycle.weights
    if data.test is not None:  # once, after the last cycle, on L's groups
        stage(layout.root, "test", resume, lambda: write_json(layout.test_metrics, evaluate_weights(
            cfg, weights, data.test, images, layout.test_predictions, layout.labels_l0, layout.labels_l0)))
    return rows
