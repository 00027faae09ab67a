"""Detection metrics: LVIS AP / AP_r / AP_c / AP_f / AP50 / AP75 and COCO mAP@[.5:.95].

``APr``/``APc``/``APf`` use the ground truth's own frequency tags (LVIS: counted on the whole
training split). Given the L0 groups (taast_ray/evaluation/tail.py: r < 10, c 10–100, f > 100
images in L0), ``APr@L0``/``APc@L0``/``APf@L0`` are what LVISEval computes on a copy of the
ground truth carrying those tags. A group with no category in it is undefined: None, never 0.

Both libraries read the same ground truth and the same predictions file. Fields that the LVIS or
COCO API needs but a plain COCO ground truth lacks are filled in a temporary copy; a complete LVIS
file is passed through untouched so results equal calling the libraries directly.
"""
import contextlib
import json
import math
import tempfile
from collections import defaultdict
from io import StringIO
from pathlib import Path

import numpy as np

from taast_ray.errors import InputError
from taast_ray.io import write_json

LVIS_KEYS = ("AP", "APr", "APc", "APf", "AP50", "AP75")
GROUPS = {"r": "APr", "c": "APc", "f": "APf"}
# what a cycle reports, and how tables and reports name it: the one list the loop, the demo,
# the experiment configuration and its report read
METRIC_KEYS = ("AP", "APr", "APc", "APf", "mAP")
METRIC_NAMES = {"AP": "AP", "APr": "AP_rare", "APc": "AP_common", "APf": "AP_freq", "mAP": "mAP",
                "APr@L0": "APr@L0", "APc@L0": "APc@L0", "APf@L0": "APf@L0"}
L0_KEYS = ("APr@L0", "APc@L0", "APf@L0")
DEFINITIONS = {
    "APr": "LVIS AP over the ground truth's own r tags (training-split counts: <= 10 images)",
    "APc": "LVIS AP over the ground truth's own c tags (11-100 training images)",
    "APf": "LVIS AP over the ground truth's own f tags (> 100 training images)",
    "AP50f": "LVIS AP at IoU 0.5 over the ground truth's own f tags (the head classes)",
    "APr@L0": "LVIS AP over classes with < 10 images in L0 (the paper's rare)",
    "APc@L0": "LVIS AP over classes with 10-100 images in L0",
    "APf@L0": "LVIS AP over classes with > 100 images in L0",
}


def evaluate_detections(gt_json: str | Path, predictions_json: str | Path,
                        verbose: bool = False, l0_frequency: dict[int, str] | None = None,
                        frequency: dict[int, str] | None = None) -> dict:
    """Evaluate a COCO-results list against LVIS-format (or plain COCO) ground truth.

    ``l0_frequency`` (category id → r/c/f counted on L0) adds ``APr@L0``/``APc@L0``/``APf@L0``;
    ``frequency`` (category id → r/c/f of the labelled training set) replaces the ground truth's
    own groups for ``APr``/``APc``/``APf`` (a team's data: tags from L, evaluation/tail.py)."""
    gt = _read_json(gt_json)
    rows = _read_predictions(predictions_json, gt)
    if frequency is not None:
        gt = _with_frequency(gt, frequency)
    changed, frequency_source = _complete_gt(gt)
    if frequency is not None:
        changed, frequency_source = True, "labelled training set"
    l0_gt = _with_frequency(gt, l0_frequency) if l0_frequency is not None else None
    with tempfile.TemporaryDirectory(prefix="taast-eval-") as tmp:
        gt_path = str(gt_json)
        if changed:
            gt_path = str(Path(tmp) / "gt.json")
            Path(gt_path).write_text(json.dumps(gt))
        if rows:
            raw = _run_lvis(gt_path, str(predictions_json), verbose)
            raw["mAP"] = _run_coco(gt_path, str(predictions_json), verbose)
            if l0_gt is not None:
                (l0_path := Path(tmp) / "gt_l0.json").write_text(json.dumps(l0_gt))
                l0 = _run_lvis(str(l0_path), str(predictions_json), verbose)
                raw.update({f"{key}@L0": l0[key] for key in GROUPS.values()})
        else:
            raw = _empty_result(gt)  # both APs fail on an empty result list
            if l0_gt is not None:
                l0 = _empty_result(l0_gt)
                raw.update({f"{key}@L0": l0[key] for key in GROUPS.values()})
    result = _finalise(raw)
    result.update(num_predictions=len(rows), num_images=len(gt["images"]),
                  frequency_source=frequency_source,
                  definitions={k: v for k, v in DEFINITIONS.items() if k in result})
    if l0_frequency is not None:
        result["l0_frequency"] = {str(k): v for k, v in sorted(l0_frequency.items())}
    return result


def _with_frequency(gt: dict, frequency: dict[int, str]) -> dict:
    """A copy of the ground truth whose categories carry these r/c/f tags instead of their own."""
    missing = [c["id"] for c in gt["categories"] if c["id"] not in frequency]
    if missing:
        raise InputError(f"L0 groups: category {missing[0]} of the ground truth has no L0 count")
    bad = [k for k, v in frequency.items() if v not in GROUPS]
    if bad:
        raise InputError(f"L0 groups: category {bad[0]}: {frequency[bad[0]]!r} is not r/c/f")
    cats = [{**c, "frequency": frequency[c["id"]]} for c in gt["categories"]]
    return {**gt, "categories": cats}


def write_predictions(path: str | Path, rows: list[dict]) -> None:
    """Write a COCO results list atomically (a half-written file would fail evaluation later)."""
    write_json(path, list(rows))


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read JSON ({exc})") from exc


def _read_predictions(path, gt) -> list[dict]:
    """Check rows up front: both libraries fail on bad rows with bare asserts or KeyErrors."""
    rows = _read_json(path)
    if not isinstance(rows, list):
        raise InputError(f"{path}: predictions must be a JSON list of COCO results")
    image_ids = {img["id"] for img in gt["images"]}
    category_ids = {cat["id"] for cat in gt["categories"]}
    for i, row in enumerate(rows):
        where = f"{path}: prediction {i}"
        if not isinstance(row, dict) or not {"image_id", "category_id", "bbox", "score"} <= row.keys():
            raise InputError(f"{where} needs image_id, category_id, bbox and score")
        if row["image_id"] not in image_ids:
            raise InputError(f"{where}: image_id {row['image_id']!r} is not in the ground truth")
        if row["category_id"] not in category_ids:
            raise InputError(f"{where}: unknown category_id {row['category_id']!r}")
        box = row["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(_finite(v) for v in box)):
            raise InputError(f"{where}: bbox must be four finite numbers [x, y, w, h]")
        if not _finite(row["score"]):
            raise InputError(f"{where}: score {row['score']!r} is not a finite number")
    return rows


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _complete_gt(gt) -> tuple[bool, str]:
    """Fill what LVIS/COCO need; return (changed, frequency_source)."""
    changed = False
    present = defaultdict(set)  # image id -> categories annotated in it
    for ann in gt["annotations"]:
        present[ann["image_id"]].add(ann["category_id"])
        if "area" not in ann:  # both APIs filter by area range
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
            changed = True
        if "iscrowd" not in ann:  # COCOeval reads it unconditionally; LVIS files lack it
            ann["iscrowd"] = 0
            changed = True
    all_cats = {cat["id"] for cat in gt["categories"]}
    for img in gt["images"]:
        # Without neg ids LVIS silently drops every false positive on the image (federated rule);
        # a plain COCO file is fully annotated, so every absent category is a negative.
        if "neg_category_ids" not in img:
            img["neg_category_ids"] = sorted(all_cats - present[img["id"]])
            changed = True
        if "not_exhaustive_category_ids" not in img:
            img["not_exhaustive_category_ids"] = []
            changed = True
    computed = _complete_frequency(gt, present)
    return changed or computed, "computed" if computed else "given"


def _complete_frequency(gt, present) -> bool:
    """LVIS groups by image count in the training set; without it, count this ground truth.

    Returns whether any category's frequency was computed."""
    counts = defaultdict(int)
    for cats in present.values():
        for cat in cats:
            counts[cat] += 1
    changed = False
    for cat in gt["categories"]:
        if "frequency" not in cat:
            n = counts[cat["id"]]
            cat["frequency"] = "r" if n <= 10 else "c" if n <= 100 else "f"
            changed = True
        elif cat["frequency"] not in GROUPS:
            raise InputError(f"category {cat['id']}: frequency {cat['frequency']!r} is not r/c/f")
    return changed


def _quiet(verbose: bool):
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(StringIO())


def _run_lvis(gt_path: str, pred_path: str, verbose: bool) -> dict:
    from lvis import LVIS, LVISEval, LVISResults

    if not hasattr(np, "float"):  # lvis 0.5.3 calls np.float, removed in numpy 1.24
        np.float = float
    with _quiet(verbose):
        lvis_gt = LVIS(gt_path)  # LVIS() accepts only a path
        lvis_dt = LVISResults(lvis_gt, pred_path, max_dets=300)
        ev = LVISEval(lvis_gt, lvis_dt, iou_type="bbox")
        ev.run()
        if verbose:
            ev.print_results()
        head = float(ev._summarize("ap", iou_thr=0.5, freq_group_idx=2))  # AP50 over f tags
    return {**{key: float(ev.results[key]) for key in LVIS_KEYS}, "AP50f": head}


def _run_coco(gt_path: str, pred_path: str, verbose: bool) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with _quiet(verbose):
        coco_gt = COCO(gt_path)
        ev = COCOeval(coco_gt, coco_gt.loadRes(pred_path), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def _empty_result(gt) -> dict:
    """No predictions: AP is 0 where ground truth exists, undefined (-1) where none does."""
    annotated = {ann["category_id"] for ann in gt["annotations"]}
    raw = {key: (0.0 if annotated else -1.0) for key in (*LVIS_KEYS, "AP50f", "mAP")}
    for freq, key in GROUPS.items():
        if not any(c["frequency"] == freq and c["id"] in annotated for c in gt["categories"]):
            raw[key] = -1.0
            if key == "APf":
                raw["AP50f"] = -1.0
    return raw


def _finalise(raw: dict) -> dict:
    """Both libraries report -1 for 'no ground truth in this group': None, and named (the
    diagnostic AP50f, None as well, is not a reported metric and is not listed)."""
    result, undefined = {}, []
    for key, value in raw.items():
        if value < 0 or math.isnan(value):
            if key != "AP50f":
                undefined.append(key)
            result[key] = None
        else:
            result[key] = float(value)
    result["undefined"] = undefined
    return result
