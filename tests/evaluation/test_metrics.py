"""evaluate_detections against the LVIS and COCO APIs called directly on the same files."""
import copy
import json
from contextlib import redirect_stdout
from io import StringIO

import numpy as np
import pytest

from taast_ray.errors import InputError
from taast_ray.evaluation.metrics import evaluate_detections, write_predictions

# image id -> [(category id, [x, y, w, h])]; categories 1 rare, 2 common, 3 frequent; image 6 empty
BOXES = {1: [(1, [10, 10, 50, 50])], 2: [(2, [20, 20, 40, 60]), (3, [100, 100, 30, 30])],
         3: [(3, [5, 5, 80, 40])], 4: [(2, [50, 50, 60, 60])], 5: [(3, [10, 60, 40, 40])], 6: []}


def _lvis_gt() -> dict:
    cats = [{"id": 1, "name": "a", "frequency": "r"}, {"id": 2, "name": "b", "frequency": "c"},
            {"id": 3, "name": "c", "frequency": "f"}]
    images, anns = [], []
    for img_id, boxes in BOXES.items():
        present = {c for c, _ in boxes}
        images.append({"id": img_id, "width": 200, "height": 200, "file_name": f"{img_id}.jpg",
                       "neg_category_ids": [c for c in (1, 2, 3) if c not in present],
                       "not_exhaustive_category_ids": []})
        for cat, (x, y, w, h) in boxes:
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                         "segmentation": [[x, y, x, y + h, x + w, y + h, x + w, y]]})
    return {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}


def _perfect(score=1.0) -> list[dict]:
    return [{"image_id": i, "category_id": c, "bbox": b, "score": score}
            for i, boxes in BOXES.items() for c, b in boxes]


def _write(tmp_path, name, obj) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def _direct(gt_path, dt_path) -> dict:
    """The reference: the libraries called as their documentation shows."""
    from lvis import LVIS, LVISEval, LVISResults
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not hasattr(np, "float"):
        np.float = float
    with redirect_stdout(StringIO()):
        lvis_gt = LVIS(gt_path)
        ev = LVISEval(lvis_gt, LVISResults(lvis_gt, dt_path, max_dets=300), iou_type="bbox")
        ev.run()
        coco_gt = COCO(gt_path)
        cev = COCOeval(coco_gt, coco_gt.loadRes(dt_path), "bbox")
        cev.evaluate(), cev.accumulate(), cev.summarize()
    return {**{k: float(ev.results[k]) for k in ("AP", "APr", "APc", "APf")}, "mAP": cev.stats[0]}


def test_matches_libraries_called_directly(tmp_path):
    preds = _perfect(0.9)[:4] + [
        {"image_id": 3, "category_id": 1, "bbox": [5, 5, 80, 40], "score": 0.95},  # FP, negative
        {"image_id": 6, "category_id": 3, "bbox": [0, 0, 30, 30], "score": 0.99},  # FP, negative
        {"image_id": 4, "category_id": 2, "bbox": [55, 52, 60, 60], "score": 0.3},  # loose box
        {"image_id": 5, "category_id": 3, "bbox": [10, 60, 40, 40], "score": 0.05},  # low score
    ]
    gt_path, dt_path = _write(tmp_path, "gt.json", _lvis_gt()), _write(tmp_path, "dt.json", preds)
    got, want = evaluate_detections(gt_path, dt_path), _direct(gt_path, dt_path)
    for key, value in want.items():
        assert got[key] == value, key
    assert 0 < got["AP"] < 1 and 0 < got["mAP"] < 1
    assert got["num_predictions"] == 8 and got["num_images"] == 6
    assert got["undefined"] == [] and got["frequency_source"] == "given"


def test_perfect_predictions_score_one(tmp_path):
    gt_path = _write(tmp_path, "gt.json", _lvis_gt())
    dt_path = tmp_path / "dt.json"
    write_predictions(dt_path, _perfect())
    got = evaluate_detections(gt_path, dt_path)
    for key in ("AP", "APr", "APc", "APf", "AP50", "AP75", "mAP"):
        assert got[key] == pytest.approx(1.0, abs=1e-6), key


def test_federated_negatives_decide_whether_a_false_positive_counts(tmp_path):
    # A confident FP of category 1 on empty image 6, ranked above the only true category-1 box.
    preds = _perfect(0.5) + [{"image_id": 6, "category_id": 1, "bbox": [0, 0, 40, 40],
                              "score": 1.0}]
    dt_path = _write(tmp_path, "dt.json", preds)
    negative = evaluate_detections(_write(tmp_path, "neg.json", _lvis_gt()), dt_path)
    unknown_gt = _lvis_gt()
    unknown_gt["images"][5]["neg_category_ids"].remove(1)  # category 1 now unverified on image 6
    unknown = evaluate_detections(_write(tmp_path, "unknown.json", unknown_gt), dt_path)
    assert negative["APr"] < 1.0 and negative["AP"] < 1.0
    assert unknown["APr"] == pytest.approx(1.0) and unknown["AP"] == pytest.approx(1.0)
    assert negative["mAP"] == unknown["mAP"] < 1.0  # COCO has no federated rule


def test_empty_predictions_give_zeros(tmp_path):
    got = evaluate_detections(_write(tmp_path, "gt.json", _lvis_gt()),
                              _write(tmp_path, "dt.json", []))
    assert all(got[k] == 0.0 for k in ("AP", "APr", "APc", "APf", "AP50", "AP75", "mAP"))
    assert got["num_predictions"] == 0 and got["undefined"] == []


def test_plain_coco_ground_truth_gets_frequency_and_negatives(tmp_path):
    gt = _lvis_gt()
    for img in gt["images"]:
        del img["neg_category_ids"], img["not_exhaustive_category_ids"]
    for cat in gt["categories"]:
        del cat["frequency"]
    for ann in gt["annotations"]:
        del ann["iscrowd"]
    gt_path = _write(tmp_path, "coco.json", gt)
    original = copy.deepcopy(gt)
    fp = [{"image_id": 6, "category_id": 1, "bbox": [0, 0, 40, 40], "score": 1.0}]
    got = evaluate_detections(gt_path, _write(tmp_path, "dt.json", _perfect(0.5) + fp))
    assert got["frequency_source"] == "computed"
    assert set(got["undefined"]) == {"APc", "APf"}  # every category is in <= 10 images: rare
    assert got["APr"] == got["AP"] < 1.0  # filled negatives make the FP count
    assert json.loads(open(gt_path).read()) == original  # the user's file is left alone


def test_bad_prediction_names_the_record(tmp_path):
    gt_path = _write(tmp_path, "gt.json", _lvis_gt())
    bad = [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]
    with pytest.raises(InputError, match="prediction 0: image_id 99"):
        evaluate_detections(gt_path, _write(tmp_path, "dt.json", bad))


def _mixed_predictions() -> list[dict]:
    return _perfect(0.9)[:4] + [
        {"image_id": 3, "category_id": 1, "bbox": [5, 5, 80, 40], "score": 0.95},
        {"image_id": 6, "category_id": 3, "bbox": [0, 0, 30, 30], "score": 0.99},
        {"image_id": 4, "category_id": 2, "bbox": [55, 52, 60, 60], "score": 0.3},
    ]


def test_l0_groups_equal_lvis_on_a_relabelled_copy(tmp_path):
    """APr@L0 is LVISEval's APr on a copy of the ground truth carrying the L0 tags."""
    gt = _lvis_gt()
    gt_path, dt_path = _write(tmp_path, "gt.json", gt), _write(tmp_path, "dt.json", _mixed_predictions())
    l0 = {1: "f", 2: "r", 3: "c"}  # a permutation of the file's tags r, c, f
    got = evaluate_detections(gt_path, dt_path, l0_frequency=l0)
    relabelled = copy.deepcopy(gt)
    for cat in relabelled["categories"]:
        cat["frequency"] = l0[cat["id"]]
    want = _direct(_write(tmp_path, "gt_l0.json", relabelled), dt_path)
    for group in ("APr", "APc", "APf"):
        assert got[f"{group}@L0"] == want[group], group
    # the permutation moves the file's groups: category 2 (file c) is the L0-rare one
    assert got["APr@L0"] == got["APc"] and got["APc@L0"] == got["APf"] and got["APf@L0"] == got["APr"]
    assert got["l0_frequency"] == {"1": "f", "2": "r", "3": "c"}
    assert "APr@L0" in got["definitions"] and "< 10 images in L0" in got["definitions"]["APr@L0"]
    assert json.loads(open(gt_path).read()) == gt  # the file's own tags are untouched


def test_undefined_l0_group_is_none_not_zero(tmp_path):
    gt_path, dt_path = _write(tmp_path, "gt.json", _lvis_gt()), _write(tmp_path, "dt.json", _mixed_predictions())
    got = evaluate_detections(gt_path, dt_path, l0_frequency={1: "r", 2: "r", 3: "c"})
    assert got["APf@L0"] is None and "APf@L0" in got["undefined"]
    assert got["APr@L0"] is not None and got["APc@L0"] is not None
    empty = evaluate_detections(gt_path, _write(tmp_path, "none.json", []),
                                l0_frequency={1: "r", 2: "r", 3: "c"})
    assert empty["APr@L0"] == 0.0 and empty["APf@L0"] is None


def test_head_ap50_is_lvis_ap50_over_the_f_classes(tmp_path):
    gt_path = _write(tmp_path, "gt.json", _lvis_gt())
    # category 3 (f) found perfectly, the others missed: AP50 over f is 1, overall below 1
    preds = [p for p in _perfect(0.9) if p["category_id"] == 3]
    got = evaluate_detections(gt_path, _write(tmp_path, "dt.json", preds))
    assert got["AP50f"] == pytest.approx(1.0) and got["AP50"] < 1.0


def test_l0_groups_must_cover_every_category(tmp_path):
    gt_path, dt_path = _write(tmp_path, "gt.json", _lvis_gt()), _write(tmp_path, "dt.json", _perfect())
    with pytest.raises(InputError, match="category 3"):
        evaluate_detections(gt_path, dt_path, l0_frequency={1: "r", 2: "c"})
