"""Degenerate selections are loud (issue 16): the summary's warnings, from the pure function."""
import numpy as np

from taast_ray.outputs.warnings import selection_warnings


def test_most_of_the_pool_without_boxes_is_a_warning():
    boxes = np.array([0, 0, 0, 2, 0])
    value = np.array([0, 0, 0, 1.5, 0.0])
    lines = selection_warnings(boxes, value, np.ones(5, bool), "taast", seed=7)
    assert len(lines) == 1 and "no boxes on 4 of 5 pool images (80%)" in lines[0]
    assert "seeded hash of image_id (selection.seed 7)" in lines[0]


def test_equal_ranking_values_are_a_warning_and_half_empty_is_not():
    boxes = np.array([1, 1, 0, 0])
    lines = selection_warnings(boxes, np.full(4, 0.3), np.ones(4, bool), "entropy", seed=1)
    assert len(lines) == 1 and "same E(x) (0.3)" in lines[0]


def test_only_eligible_images_count_and_a_spread_ranking_is_quiet():
    boxes = np.array([1, 1, 1, 1])
    value = np.array([0.2, 0.2, 0.9, 0.0])
    eligible = np.array([True, True, False, False])  # the others are in P
    assert "same φ(x)" in selection_warnings(boxes, value, eligible, "taast", seed=0)[0]
    assert selection_warnings(boxes, value, np.ones(4, bool), "taast", seed=0) == []


def test_random_and_coreset_rank_by_something_else():
    boxes = np.array([3, 3])
    for strategy in ("random", "coreset"):
        assert selection_warnings(boxes, np.zeros(2), np.ones(2, bool), strategy, seed=0) == []
