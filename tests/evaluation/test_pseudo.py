"""Pseudo-label precision and recall per L0 group, against values worked out by hand."""
import pytest

from taast_ray.evaluation.pseudo import iou_matrix, matched, pseudo_label_quality

FREQUENCY = {1: "r", 2: "c", 3: "f"}
TRUTH = {"images": [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}],
         "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
                         {"image_id": 1, "category_id": 3, "bbox": [20, 20, 10, 10]},
                         {"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10]},
                         {"image_id": 3, "category_id": 1, "bbox": [5, 5, 10, 10]}],
         "categories": [{"id": 1}, {"id": 2}, {"id": 3}]}
PSEUDO = {"images": [{"id": 7, "taast_image_id": "1"}, {"id": 8, "taast_image_id": "2"}],
          "annotations": [
              {"image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},    # TP (IoU 1)
              {"image_id": 7, "category_id": 3, "bbox": [21, 21, 10, 10], "score": 0.9},  # TP: 81/119
              {"image_id": 7, "category_id": 2, "bbox": [40, 40, 5, 5], "score": 0.9},    # FP: no cat 2 there
              {"image_id": 8, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.85},   # FP: taken below
              {"image_id": 8, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.95}],  # TP (higher score)
          "categories": []}


def test_iou_by_hand():
    assert iou_matrix([[0, 0, 10, 10]], [[5, 5, 10, 10]])[0, 0] == pytest.approx(25 / 175)
    assert iou_matrix([[20, 20, 10, 10]], [[21, 21, 10, 10]])[0, 0] == pytest.approx(81 / 119)
    assert iou_matrix([[0, 0, 1, 1]], [[5, 5, 1, 1]])[0, 0] == 0


def test_matching_takes_boxes_by_score_and_each_truth_box_once():
    boxes = [a for a in PSEUDO["annotations"] if a["image_id"] == 8]
    truth = [a for a in TRUTH["annotations"] if a["image_id"] == 2]
    assert matched(boxes, truth) == [False, True]


def test_precision_and_recall_per_group():
    q = pseudo_label_quality(PSEUDO, TRUTH, FREQUENCY)
    # r: 1 pseudo box, right; 2 rare objects in the pool (images 1 and 3), 1 of them on P's images
    assert q["r"] == {"pseudo_boxes": 1, "true_positive": 1, "objects": 2, "precision": 1.0,
                      "recall": 0.5, "recall_on_pseudo_images": 1.0}
    # c: 3 pseudo boxes (one on image 1, two on image 2), 1 right; 1 object, on P's image 2
    assert q["c"]["precision"] == pytest.approx(1 / 3) and q["c"]["recall"] == 1.0
    assert q["f"] == {"pseudo_boxes": 1, "true_positive": 1, "objects": 1, "precision": 1.0,
                      "recall": 1.0, "recall_on_pseudo_images": 1.0}


def test_a_group_with_nothing_to_divide_by_is_undefined_not_zero():
    q = pseudo_label_quality({"images": [], "annotations": []}, TRUTH, FREQUENCY)
    assert q["r"]["precision"] is None and q["r"]["recall"] == 0.0 and q["r"]["recall_on_pseudo_images"] is None


def test_a_pseudo_image_outside_the_pool_is_refused():
    stray = {"images": [{"id": 1, "taast_image_id": "99"}], "annotations": []}
    assert pseudo_label_quality(stray, TRUTH, FREQUENCY)["r"]["pseudo_boxes"] == 0  # no boxes: nothing to check
    stray["annotations"] = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]
    with pytest.raises(ValueError, match="pseudo-labelled image 99 is not in the pool"):
        pseudo_label_quality(stray, TRUTH, FREQUENCY)
