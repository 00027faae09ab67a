"""The protocol's starting point (SPEC.md §6): L0 = a seeded share of the training images, U = the
rest as a pool manifest, and the oracle that reveals U's ground truth in simulation mode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from taast_ray.io import write_json, write_parquet


def subset_labels(data: dict, image_ids) -> dict:
    """The same label file restricted to these images (categories kept, ids unchanged)."""
    keep = {int(i) for i in image_ids}
    return {**{k: v for k, v in data.items() if k not in ("images", "annotations")},
            "images": [img for img in data["images"] if img["id"] in keep],
            "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}


def split_labelled_pool(train_json: str | Path, image_root: str | Path, out: str | Path, *,
                        fraction: float, seed: int) -> tuple[Path, Path]:
    """Write ``out/labels_L0.json`` and ``out/pool.parquet`` (image_id = the COCO id as a string)."""
    data = json.loads(Path(train_json).read_text())
    ids = np.sort(np.array([img["id"] for img in data["images"]], dtype=np.int64))
    count = max(1, int(round(fraction * len(ids))))
    labelled = np.sort(np.random.default_rng(seed).choice(ids, size=count, replace=False))
    out = Path(out)
    write_json(out / "labels_L0.json", subset_labels(data, labelled))
    files = {img["id"]: img["file_name"] for img in data["images"]}
    pool = np.setdiff1d(ids, labelled)
    root = Path(image_root).resolve()
    write_parquet(out / "pool.parquet", pa.table({
        "image_id": pa.array([str(i) for i in pool], pa.string()),
        "uri": pa.array([str(root / files[int(i)]) for i in pool], pa.string())}))
    return out / "labels_L0.json", out / "pool.parquet"


def oracle_labels(gt_json: str | Path, image_ids) -> dict:
    """Simulation's annotator: the ground truth of the selected images, as a label file."""
    return subset_labels(json.loads(Path(gt_json).read_text()), [int(i) for i in image_ids])


def merge_labels(base: dict, new: dict) -> dict:
    """L ∪ Q (eq. 12): images of ``new`` replace any of the same id; annotation ids renumbered."""
    new_ids = {img["id"] for img in new["images"]}
    images = [img for img in base["images"] if img["id"] not in new_ids] + new["images"]
    annotations = [a for a in base["annotations"] if a["image_id"] not in new_ids] + new["annotations"]
    annotations = [{**a, "id": n + 1} for n, a in enumerate(annotations)]
    return {**base, "images": sorted(images, key=lambda i: i["id"]), "annotations": annotations}
