"""Production hand-off: the annotators' labels for the cycle that waits for them."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from taast_ray.errors import InputError
from taast_ray.io import read_json, write_json
from taast_ray.loop.layout import RunLayout


def ingest_labels(run: str | Path, labels_file: str | Path) -> Path:
    """Validate the annotators' labels for the awaiting cycle (selected images only, known
    categories, sane boxes) and store them as that cycle's ``labels_new.json``."""
    from taast_ray.data.labels import load_labels

    layout = RunLayout(Path(run))
    awaiting = [c for c in layout.cycles() if c.done("select") and not c.done("annotate")]
    if not awaiting:
        raise InputError(f"{layout.root}: no cycle is waiting for annotations")
    cycle = awaiting[-1]
    new = load_labels(labels_file)
    selected = set(pq.read_table(cycle.selection).column("image_id").to_pylist())
    for img in new.images:
        if str(img["id"]) not in selected:
            raise InputError(f"{labels_file}: image {img['id']} was not selected in {cycle.dir.name}")
    known = {c["id"] for c in read_json(layout.labels_l0)["categories"]}
    unknown = sorted({c["id"] for c in new.categories} - known)
    if unknown:
        raise InputError(f"{labels_file}: category {unknown[0]} is not a category of this run")
    write_json(cycle.labels_new, new.raw)
    return cycle.labels_new
