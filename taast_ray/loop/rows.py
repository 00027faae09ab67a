"""A cycle's row of ``cycles.json`` and the table of rows ``taast run`` and the demo print.

A row is read back from the cycle's files (metrics, training set, tail, coverage), so a resumed
run's rows are those an uninterrupted run would have written.
"""
from __future__ import annotations

from taast_ray.evaluation.metrics import METRIC_KEYS
from taast_ray.io import read_json
from taast_ray.loop.layout import CycleLayout

L0_METRIC_KEYS = ("APr@L0", "APc@L0", "APf@L0")  # groups counted on L0 (evaluation/tail.py)
ROW_METRIC_KEYS = (*METRIC_KEYS, *L0_METRIC_KEYS, "AP50f")  # what a cycle's evaluation puts in its row
TAIL_KEYS = ("tail_lift", "rare_images_selected", "rare_images_random", "candidate_rare_share",
             "pool_rare_image_share")
TABLE_COLUMNS = ("AP", "APr@L0", "APr", "APc", "APf", "mAP")


def cycle_row(cycle: CycleLayout, labels: dict) -> dict:
    metrics = read_json(cycle.metrics) if cycle.metrics.exists() else {}  # no val: no metrics
    train_set = read_json(cycle.train_set)
    manual = len(labels["annotations"])
    tail = read_json(cycle.tail) if cycle.tail.exists() else {}
    coverage = read_json(cycle.coverage) if cycle.coverage.exists() else {}
    return {"cycle": cycle.index, **{k: metrics.get(k) for k in ROW_METRIC_KEYS},
            "labelled_images": len(labels["images"]),
            "manual_annotations": manual,
            "pseudo_annotations": len(train_set["annotations"]) - manual,
            "pseudo_share": round(1 - manual / max(len(train_set["annotations"]), 1), 4),
            **{k: tail.get(k) for k in TAIL_KEYS}, "box_coverage": coverage.get("share"),
            "pseudo_quality": tail.get("pseudo_labels")}  # by L0 group, where the truth is known


def format_metric(value, digits: int = 3) -> str:
    """A metric for a table: '—' where it is undefined (no class in the group, nothing to catch)."""
    return "—" if value is None else f"{value:.{digits}f}"


def format_table(rows: list[dict]) -> str:
    """Per cycle: AP, APr@L0 (rare = < 10 L0 images), APr/APc/APf (the file's own LVIS tags),
    mAP, the pseudo share of training boxes, and the tail lift of that cycle's selection."""
    header = (f"{'cycle':>5} {'images':>7} " + " ".join(f"{k:>6}" for k in TABLE_COLUMNS)
              + f" {'pseudo%':>8} {'lift':>5} {'rare sel/rand':>13}")
    lines = [header, "-" * len(header)]
    for r in rows:
        caught = r.get("rare_images_selected")
        sel = "" if caught is None else f"{caught}/{r['rare_images_random']:.1f}"
        lines.append(f"{r['cycle']:>5} {r['labelled_images']:>7} " + " ".join(
            f"{format_metric(r.get(k)):>6}" for k in TABLE_COLUMNS)
            + f" {100 * r['pseudo_share']:>7.1f}% {format_metric(r.get('tail_lift'), 2):>5} {sel:>13}")
    lines.append("APr@L0: classes with < 10 images in L0 (the paper's rare); APr/APc/APf: the label "
                 "file's LVIS tags (training-split counts); lift: L0-rare images selected / random's "
                 "expectation (B x pool share); — = undefined")
    return "\n".join(lines)
