"""A team's own data: APr/APc/APf on the groups of the labelled training set L, not on the
validation split's counts; an undefined group is None and printed as "—"."""
import json

from taast_ray.evaluation.metrics import evaluate_detections
from taast_ray.evaluation.tail import format_own_class_table, training_frequency
from taast_ray.loop.rows import format_metric
from tests.evaluation.test_metrics import _lvis_gt, _mixed_predictions, _write


def labelled(counts: dict[int, int], tags: dict[int, str] | None = None) -> dict:
    """An L whose category c is on counts[c] images (one box each)."""
    images, anns = [], []
    for cat, n in counts.items():
        for _ in range(n):
            images.append({"id": len(images) + 1})
            anns.append({"id": len(anns) + 1, "image_id": len(images), "category_id": cat, "bbox": [0, 0, 1, 1]})
    cats = [{"id": c, "name": f"k{c}", **({"frequency": tags[c]} if tags else {})} for c in counts]
    return {"images": images, "annotations": anns, "categories": cats}


def test_groups_are_counted_on_l_by_the_lvis_rule():
    assert training_frequency(labelled({1: 10, 2: 11, 3: 101, 4: 0})) == {1: "r", 2: "c", 3: "f", 4: "r"}


def test_the_files_own_tags_win_when_every_category_has_one():
    assert training_frequency(labelled({1: 500, 2: 1}, {1: "r", 2: "f"})) == {1: "r", 2: "f"}


def test_val_counts_do_not_decide_the_groups(tmp_path):
    gt = _lvis_gt()
    for cat in gt["categories"]:
        del cat["frequency"]  # a plain COCO val file: counted on val, all three classes would be r
    gt_path, dt_path = _write(tmp_path, "gt.json", gt), _write(tmp_path, "dt.json", _mixed_predictions())
    groups = training_frequency(labelled({1: 3, 2: 3, 3: 200}))
    got = evaluate_detections(gt_path, dt_path, frequency=groups)
    assert got["frequency_source"] == "labelled training set"
    assert got["APc"] is None and "APc" in got["undefined"] and format_metric(got["APc"]) == "—"
    assert got["APr"] is not None and got["APf"] is not None
    assert "frequency" not in json.loads(open(gt_path).read())["categories"][0]


def test_class_table_prints_l_counts_and_both_tags():
    table = format_own_class_table(labelled({1: 12, 2: 4}), val=labelled({1: 2, 2: 3}))
    lines = table.splitlines()
    assert lines[0].split() == ["id", "class", "tag", "L", "val", "L0", "tag"]
    assert lines[1].split() == ["1", "k1", "c", "12", "2", "c"] and lines[2].split() == ["2", "k2", "r", "4", "3", "r"]
