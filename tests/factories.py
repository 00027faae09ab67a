"""Small, seeded input files in the SPEC.md §3 contracts, shared by tests and benchmarks."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taast_ray.contracts import detections
from taast_ray.errors import InputError


def detections_table(n_images: int, num_classes: int, seed: int = 0, max_boxes: int = 5,
                     confident_share: float = 0.1) -> pa.Table:
    """Random detections: sharp score rows for a share of images (→ P), flat ones elsewhere."""
    rng = np.random.default_rng(seed)
    ids, boxes, scores = [], [], []
    for i in range(n_images):
        n = int(rng.integers(0, max_boxes + 1))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(5, 50, (n, 2))
        boxes.append(np.hstack([xy, xy + wh]).astype(np.float32).tolist())
        s = rng.random((n, num_classes)) ** 4 * 0.6
        if rng.random() < confident_share:
            s[np.arange(n), rng.integers(0, num_classes, n)] = rng.uniform(0.85, 1.0, n)
        scores.append(s.astype(np.float32).tolist())
        ids.append(f"img_{i:05d}")
    f32 = pa.list_(pa.list_(pa.float32()))
    return pa.table({"image_id": ids, "boxes": pa.array(boxes, f32), "scores": pa.array(scores, f32),
                     "width": pa.array([160] * n_images, pa.int32()),
                     "height": pa.array([120] * n_images, pa.int32())})


def write_detections(path: Path, *args, **kwargs) -> Path:
    pq.write_table(detections_table(*args, **kwargs), path)
    return path


def write_embeddings(path: Path, image_ids, dim: int = 16, seed: int = 0, clusters: int = 8) -> Path:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, len(image_ids))] + 0.3 * rng.normal(size=(len(image_ids), dim))
    pq.write_table(pa.table({"image_id": pa.array([str(i) for i in image_ids], pa.string()),
                             "embedding": pa.array(x.astype(np.float32).tolist(),
                                                   pa.list_(pa.float32()))}), path)
    return path


def write_labels(path: Path, class_image_counts, seed: int = 0, first_image_id: int = 1) -> Path:
    """An LVIS-style labelled set where class k appears in class_image_counts[k] images."""
    rng = np.random.default_rng(seed)
    num_classes = len(class_image_counts)
    n_images = max(max(class_image_counts), 1)
    images = [{"id": first_image_id + i, "file_name": f"{i}.jpg", "width": 160, "height": 120,
               "not_exhaustive_category_ids": []} for i in range(n_images)]
    annotations = []
    for k, count in enumerate(class_image_counts):
        for i in rng.choice(n_images, int(count), replace=False):
            annotations.append({"id": len(annotations) + 1, "image_id": first_image_id + int(i),
                                "category_id": k + 1, "bbox": [10, 10, 20, 30], "area": 600,
                                "iscrowd": 0})
    present = {}
    for a in annotations:
        present.setdefault(a["image_id"], set()).add(a["category_id"])
    for img in images:
        img["neg_category_ids"] = [k + 1 for k in range(num_classes) if k + 1 not in present.get(img["id"], ())]
    categories = [{"id": k + 1, "name": f"class_{k}", "frequency": "r"} for k in range(num_classes)]
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def one_line(capsys) -> str:
    """The one error line a refused command leaves on stderr (its ``[taast]`` progress lines
    aside), after checking there is exactly one and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("[taast] ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def read_detections(path: str | Path | list, num_classes: int, batch_rows: int = detections.BATCH_ROWS,
                    failed: list | None = None) -> detections.FlatDetections:
    """Every box of a detections input in flat arrays, whole: the reference the streaming pass
    (:func:`taast_ray.contracts.pool.stream_pool`) is checked against on small inputs."""
    source = detections.DetectionsSource(path)
    parts = []
    for name, at, table in source.batches(batch_rows=batch_rows):
        table = detections.without_failed(table, failed)
        if table.num_rows:
            parts.append(detections.flatten_detections(table, num_classes, source=name, check_unique=False,
                                            first_record=at))
    if not parts:
        raise InputError(f"{source.path}: the pool is empty (no rows)")
    image_ids = np.concatenate([p.image_ids for p in parts])
    detections.check_unique_ids(pa.array(image_ids, pa.string()), str(source.path))
    offsets = np.zeros(len(image_ids) + 1, dtype=np.int64)
    np.cumsum(np.concatenate([p.counts for p in parts]), out=offsets[1:])
    extra = {k: None if any(getattr(p, k) is None for p in parts) else
             np.concatenate([getattr(p, k) for p in parts]) for k in ("width", "height", "uri")}
    return detections.FlatDetections(image_ids, offsets, np.concatenate([p.boxes for p in parts]),
                          np.concatenate([p.scores for p in parts]), **extra)


def embeddings_table(image_ids: Sequence[str], matrix: np.ndarray) -> pa.Table:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    values = pa.array(matrix.reshape(-1))
    embedding = pa.FixedSizeListArray.from_arrays(values, matrix.shape[1]) if matrix.size else \
        pa.array([[] for _ in image_ids], type=pa.list_(pa.float32()))
    return pa.table({"image_id": pa.array(list(image_ids), pa.string()), "embedding": embedding})


def run_strategy(name: str, ctx):
    """A registered strategy's picks for a context (registry.strategy(name).run)."""
    from taast_ray.selection import registry

    return registry.strategy(name).run(ctx)
