"""Evaluation rows: every class score of a kept box is a detection of its own (multi-label)."""
import numpy as np
import pytest

from taast_ray.evaluation.predict import result_rows


def test_every_class_at_or_above_the_threshold_is_a_row_best_first():
    boxes = np.array([[0, 0, 10, 20], [5, 5, 15, 15]], np.float32)
    scores = np.array([[0.9, 0.0005, 0.2], [0.001, 0.6, 0.0]], np.float32)
    rows = result_rows(7, boxes, scores, [11, 12, 13])
    # (box 0, 11) 0.9; (box 1, 12) 0.6; (box 0, 13) 0.2; (box 1, 11) 0.001 — 0.0005 and 0 dropped
    assert [(r["category_id"], r["score"]) for r in rows] == [
        (11, pytest.approx(0.9)), (12, pytest.approx(0.6)), (13, pytest.approx(0.2)), (11, pytest.approx(0.001))]
    assert rows[0]["bbox"] == [0, 0, 10, 20] and rows[1]["bbox"] == [5, 5, 10, 10]
    assert all(r["image_id"] == 7 for r in rows)


def test_at_most_max_dets_rows_and_none_without_boxes():
    rng = np.random.default_rng(0)
    boxes, scores = rng.uniform(0, 50, (40, 4)).astype(np.float32), rng.uniform(0.01, 1, (40, 10))
    rows = result_rows(1, boxes, scores, list(range(10)), max_dets=25)
    assert len(rows) == 25 and rows[-1]["score"] == pytest.approx(np.sort(scores.ravel())[-25])
    assert result_rows(1, np.zeros((0, 4)), np.zeros((0, 10)), list(range(10))) == []
