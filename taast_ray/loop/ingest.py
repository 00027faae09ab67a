"""Production hand-off: the annotators' labels for the cycle that waits for them.

A run on a team's own data (data.labelled / data.yolo) takes what annotation tools return: a
Label Studio JSON export of the tasks we sent, or COCO matched by id, file name or URI
(data/annotations.py). Every selected image must come back labelled, or the ingest is refused
with the count missing; ``partial`` accepts fewer, and the missing images go back to the pool
(the next cycle's pool is the pool minus what is labelled). A simulation run with
``protocol.simulate: false`` takes COCO whose image ids are the selected ids, as before.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from taast_ray.config import load_config
from taast_ray.errors import InputError
from taast_ray.io import read_json, write_json
from taast_ray.loop.layout import CycleLayout, RunLayout


def awaiting_cycle(layout: RunLayout) -> CycleLayout:
    awaiting = [c for c in layout.cycles() if c.done("select") and not c.done("annotate")]
    if not awaiting:
        raise InputError(f"{layout.root}: no cycle is waiting for annotations")
    return awaiting[-1]


def ingest_labels(run: str | Path, labels_file: str | Path, *, partial: bool = False) -> Path:
    """Validate the annotators' labels for the awaiting cycle and store them as that cycle's
    ``labels_new.json``; return its path. ``partial``: accept labels for some of the images."""
    layout = RunLayout(Path(run))
    cycle = awaiting_cycle(layout)
    cfg = load_config(layout.config) if layout.config.exists() else None
    if cfg is not None and cfg.production:
        new, missing = _own_labels(layout, cycle, Path(labels_file))
    else:
        new, missing = _simulation_labels(layout, cycle, Path(labels_file))
    selected = pq.read_metadata(cycle.selection).num_rows
    if missing and not partial:
        raise InputError(f"{labels_file}: labels for {len(missing)} of the {selected} selected images are "
                         f"missing (e.g. {missing[0]!r}); pass --partial to ingest the "
                         f"{selected - len(missing)} labelled ones and return the rest to the pool")
    info = new.get("info") or {}
    skipped, others = list(info.get("skipped") or []), int(info.get("not_selected") or 0)
    if not new["images"]:
        why = (f" ({others} of its images are not this cycle's selection: another cycle's, or never selected)"
               if others else "") + (f" ({len(skipped)} skipped)" if skipped else "")
        raise InputError(f"{labels_file}: no image selected in {cycle.dir.name} is labelled in it{why}")
    write_json(cycle.ingest_record, {"source": str(labels_file), "labelled": len(new["images"]),
                                     "boxes": len(new["annotations"]), "missing": missing,
                                     "skipped": skipped, "not_selected": others,
                                     "returned_to_pool": len(missing) + len(skipped)})
    write_json(cycle.labels_new, new)
    return cycle.labels_new


def _own_labels(layout: RunLayout, cycle: CycleLayout, path: Path) -> tuple[dict, list[str]]:
    from taast_ray.data.annotations import coco_to_selected
    from taast_ray.data.labelstudio import YoloExport, label_studio_to_coco, read_export, yolo_export_to_coco
    from taast_ray.data.images import image_size
    from taast_ray.data.labels import labels_from_dict

    table = pq.read_table(cycle.selection)
    uris = table.column("uri").to_pylist() if "uri" in table.column_names else [None] * table.num_rows
    sizes = _task_sizes(cycle)
    selected = {i: {"uri": u, **sizes.get(i, {})} for i, u in zip(table.column("image_id").to_pylist(), uris)}
    categories = read_json(layout.labels_l0)["categories"]

    def size_of(key: str) -> tuple[int, int]:
        if not selected[key]["uri"]:
            raise InputError(f"{path}: the size of {key!r} is unknown (no uri in the selection)")
        return image_size(selected[key]["uri"])

    raw = read_export(path)
    if isinstance(raw, YoloExport):
        return yolo_export_to_coco(raw, selected, categories, str(path), size_of)
    if isinstance(raw, list):
        return label_studio_to_coco(raw, selected, categories, str(path), size_of)
    return coco_to_selected(labels_from_dict(raw, path), selected, categories, str(path), size_of)


def _task_sizes(cycle: CycleLayout) -> dict:
    """Image sizes the selection recorded in its Label Studio tasks (the detector saw them)."""
    if not cycle.label_studio_tasks.exists():
        return {}
    from taast_ray.schemas.json_files import SELECTION_TASKS, parse
    from taast_ray.data.labels import read_labels_json
    from taast_ray.data.labelstudio import recorded_size

    out = {}
    tasks = read_labels_json(cycle.label_studio_tasks)
    parse(SELECTION_TASKS, tasks, str(cycle.label_studio_tasks))  # a file of the run's, but one a user can edit
    for task in tasks:
        size = recorded_size(task)
        if size is not None:
            out[task["data"]["image_id"]] = {"width": size[0], "height": size[1]}
    return out


def _simulation_labels(layout: RunLayout, cycle: CycleLayout, path: Path) -> tuple[dict, list[str]]:
    from taast_ray.data.labels import load_labels

    new = load_labels(path)
    order = pq.read_table(cycle.selection).column("image_id").to_pylist()
    selected = set(order)
    for img in new.images:
        if str(img["id"]) not in selected:
            raise InputError(f"{path}: image {img['id']} was not selected in {cycle.dir.name}")
    known = {c["id"] for c in read_json(layout.labels_l0)["categories"]}
    unknown = sorted({c["id"] for c in new.categories} - known)
    if unknown:
        raise InputError(f"{path}: category {unknown[0]} is not a category of this run")
    labelled = {str(img["id"]) for img in new.images}
    return new.raw, [i for i in order if i not in labelled]
