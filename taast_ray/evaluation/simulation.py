"""A cycle's tail measures from its files, where the pool's ground truth is known (simulation).

Reads what the loop already wrote (L0's labels, the pool listing, the detector's per-image
detections, scores.parquet) and the training ground truth; the arithmetic is
:mod:`taast_ray.evaluation.tail`. No Ray here: the loop and the pilots' post-hoc analysis share it.
The loop passes every path (loop/layout.py): this layer does not know a run directory's layout.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.data.split import subset_labels
from taast_ray.evaluation.pseudo import pseudo_label_quality
from taast_ray.evaluation.tail import box_coverage, l0_frequency, rare_ids, tail_lift
from taast_ray.io import list_parquet, read_json


def pool_ids(pool_parquet: str | Path) -> list[str]:
    return pq.read_table(pool_parquet, columns=["image_id"]).column(0).to_pylist()


def pool_truth(train_gt: dict, ids) -> dict:
    """The ground truth of these pool images (ids as strings or ints), empty images listed."""
    return subset_labels(train_gt, [int(i) for i in ids])


def object_images(labels: dict) -> set[str]:
    return {str(a["image_id"]) for a in labels["annotations"]}


def boxes_per_image(detections_dir: str | Path) -> dict[str, int]:
    """image id → boxes the detector kept, over every readable image of a detections folder."""
    counts: dict[str, int] = {}
    for path in list_parquet(detections_dir):
        table = pq.read_table(path)
        if "error" in table.column_names:
            table = table.filter(pc.is_null(table.column("error")))
        lengths = pc.fill_null(pc.list_value_length(table.column("boxes")), 0)
        counts.update(zip(table.column("image_id").to_pylist(), lengths.to_pylist()))
    return counts


def pool_coverage(detections_dir: str | Path, truth: dict | None) -> dict:
    """box_coverage over the pool: object-bearing images where ground truth is known, else all."""
    return box_coverage(boxes_per_image(detections_dir), object_images(truth) if truth else None)


def selection_tail(select_dir: str | Path, truth: dict, l0_labels: dict) -> dict:
    """tail_lift of one selection (scores.parquet) against the pool's truth and L0's groups."""
    scores = pq.read_table(Path(select_dir) / "scores.parquet",
                           columns=["image_id", "candidate_class", "selected"])
    ids = scores.column("image_id").to_pylist()
    selected = [i for i, s in zip(ids, scores.column("selected").to_pylist()) if s]
    candidates = dict(zip(ids, scores.column("candidate_class").to_pylist()))
    return tail_lift(truth, selected, rare_ids(l0_frequency(l0_labels)), candidates)


def cycle_tail(pool: str | Path, select_dir: str | Path, detections: str | Path,
               train_gt_path: str | Path, l0_labels_path: str | Path) -> dict:
    """Tail lift, the detector's box coverage and the pseudo labels' precision and recall by L0
    group, of one cycle: its pool listing, its selection (scores.parquet, pseudo_labels.json) and
    its detections folder, where the loop's layout put them."""
    truth = pool_truth(read_json(train_gt_path), pool_ids(pool))
    l0 = read_json(l0_labels_path)
    out = selection_tail(select_dir, truth, l0)
    out["box_coverage"] = pool_coverage(detections, truth)
    out["pseudo_labels"] = pseudo_label_quality(read_json(Path(select_dir) / "pseudo_labels.json"), truth,
                                                l0_frequency(l0))
    return out
