"""L0 groups, tail lift and box coverage against hand-counted cases."""
import pytest

from taast_ray.evaluation.tail import (box_coverage, degenerate_warning, image_counts, l0_frequency,
                                       l0_tag, rare_ids, tail_lift)


def _labels(boxes: dict[int, list[int]], categories=range(1, 6)) -> dict:
    """image id -> category ids of its boxes (repeats: several boxes of one class)."""
    anns = [{"id": n, "image_id": i, "category_id": c}
            for n, (i, c) in enumerate((i, c) for i, cs in boxes.items() for c in cs)]
    return {"images": [{"id": i} for i in boxes], "annotations": anns,
            "categories": [{"id": c} for c in categories]}


def test_l0_tags_at_the_boundaries():
    # the paper's rare: fewer than 10 L0 images; c 10..100; f above 100
    assert [l0_tag(n) for n in (0, 1, 9, 10, 11, 100, 101, 500)] == \
        ["r", "r", "r", "c", "c", "c", "f", "f"]


def test_l0_groups_count_images_not_boxes():
    # category 1: 9 images, one of them with 3 boxes -> 9 -> r
    # category 2: 10 images -> c; category 3: 101 images -> f; category 4: 100 -> c; 5: none -> r
    boxes = {i: [1] * (3 if i == 0 else 1) for i in range(9)}
    boxes.update({100 + i: [2] for i in range(10)})
    boxes.update({200 + i: [3, 3] for i in range(101)})
    boxes.update({400 + i: [4] for i in range(100)})
    labels = _labels(boxes)
    assert image_counts(labels) == {1: 9, 2: 10, 3: 101, 4: 100, 5: 0}
    freq = l0_frequency(labels)
    assert freq == {1: "r", 2: "c", 3: "f", 4: "c", 5: "r"}
    assert rare_ids(freq) == {1, 5}


def _pool():
    # ten pool images; class 5 is L0-rare: image 1 holds two of it, images 2 and 3 one each
    return _labels({1: [5, 5, 1], 2: [5], 3: [2, 5], 4: [1], 5: [1, 2], 6: [2], 7: [3], 8: [1],
                    9: [], 10: []})


def test_tail_lift_against_a_hand_computed_selection():
    candidates = {1: 5, 2: 3, 3: None, 4: 5, 5: 1, 6: 2, 7: 3, 8: 1, 9: None, 10: None}
    got = tail_lift(_pool(), ["1", "4", "9", "2"], {5}, candidates)
    # B = 4; the pool holds rare objects in 3 of 10 images, 4 rare objects in all
    assert got["selected"] == 4 and got["pool_images"] == 10
    assert (got["pool_rare_images"], got["pool_rare_objects"]) == (3, 4)
    assert (got["rare_images_selected"], got["rare_objects_selected"]) == (2, 3)
    assert got["rare_images_random"] == pytest.approx(4 * 3 / 10)
    assert got["rare_objects_random"] == pytest.approx(4 * 4 / 10)
    assert got["tail_lift"] == pytest.approx(2 / 1.2)
    assert got["tail_lift_objects"] == pytest.approx(3 / 1.6)
    # c(x) named on 7 images, L0-rare on 2 of them (1 and 4), both selected
    assert (got["candidate_images"], got["candidate_rare"]) == (7, 2)
    assert got["candidate_rare_share"] == pytest.approx(2 / 7)
    assert got["candidate_rare_selected"] == 2
    # the truth: 4 of 12 objects are rare; 3 of the 8 object-bearing images hold one
    assert got["pool_rare_object_share"] == pytest.approx(4 / 12)
    assert got["pool_rare_image_share"] == pytest.approx(3 / 8)


def test_tail_lift_is_one_when_the_selection_is_the_whole_pool():
    got = tail_lift(_pool(), [str(i) for i in range(1, 11)], {5})
    assert got["tail_lift"] == pytest.approx(1.0) and got["tail_lift_objects"] == pytest.approx(1.0)
    assert "candidate_rare_share" not in got


def test_tail_lift_undefined_without_rare_objects_in_the_pool():
    got = tail_lift(_pool(), ["1", "2"], {4})
    assert got["pool_rare_images"] == 0 and got["tail_lift"] is None
    with pytest.raises(ValueError, match="image 99"):
        tail_lift(_pool(), ["99"], {5})


def test_box_coverage_counts_object_bearing_images_only():
    boxes = {"1": 2, "2": 0, "3": 1, "9": 0, "10": 3}
    got = box_coverage(boxes, object_images={"1", "2", "3"})
    assert (got["images"], got["with_boxes"], got["share"]) == (3, 2, pytest.approx(2 / 3))
    assert box_coverage(boxes, None)["share"] == pytest.approx(3 / 5)
    assert degenerate_warning(got, "cycle_1") is None
    low = box_coverage({"1": 0, "2": 0, "3": 1}, {"1", "2", "3"})
    line = degenerate_warning(low, "cycle_1")
    assert line.startswith("WARNING cycle_1") and "1 of 3" in line
