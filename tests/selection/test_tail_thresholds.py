"""Tail-aware eq. 1 (selection.tau_rare): τ_k per class against hand-computed membership of P."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taast_ray.config import load_config
from taast_ray.pipeline.precomputed import select_from_detections
from taast_ray.selection.scoring import class_thresholds, reduce_images


def test_thresholds_lower_tau_for_classes_rare_in_L_only():
    assert class_thresholds(0.8, np.array([50, 3, 0]), None, 10) == 0.8  # the paper's rule
    np.testing.assert_array_equal(class_thresholds(0.8, np.array([50, 3, 0, 10]), 0.5, 10), [0.8, 0.5, 0.5, 0.8])


def test_each_box_must_clear_its_own_class_threshold():
    # A: one box of class 1 at 0.6; B: one box of class 0 at 0.6; C: boxes of class 1 (0.9) and 0 (0.85);
    # D: boxes of class 1 (0.55) and class 0 (0.79)
    scores = np.array([[0.1, 0.6], [0.6, 0.1], [0.05, 0.9], [0.85, 0.1], [0.2, 0.55], [0.79, 0.3]], np.float32)
    offsets = np.array([0, 1, 2, 4, 6])
    tau = class_thresholds(0.8, np.array([50, 3]), 0.5, 10)  # τ = (0.8, 0.5)
    assert reduce_images(scores, offsets, tau).pseudo.tolist() == [True, False, True, False]
    assert reduce_images(scores, offsets, 0.8).pseudo.tolist() == [False, False, True, False]
    # a scalar τ as a vector gives the same bits as the scalar path
    same = reduce_images(scores, offsets, np.array([0.8, 0.8]))
    assert same.pseudo.tolist() == reduce_images(scores, offsets, 0.8).pseudo.tolist()


def test_tau_rare_reaches_the_pseudo_labels_of_a_selection(tmp_path):
    labels = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10} for i in range(1, 21)],
              "categories": [{"id": 1, "name": "common"}, {"id": 2, "name": "rare"}],
              "annotations": [{"id": i, "image_id": i, "category_id": 1 if i > 2 else 2, "bbox": [0, 0, 5, 5],
                               "area": 25} for i in range(1, 21)]}
    (tmp_path / "L.json").write_text(json.dumps(labels))
    pq.write_table(pa.table({"image_id": ["a", "b", "c", "d"],
                             "boxes": [[[0.0, 0.0, 5.0, 5.0]]] * 4,
                             "scores": [[[0.1, 0.6]], [[0.6, 0.1]], [[0.2, 0.3]], [[0.9, 0.05]]]}),
                   tmp_path / "det.parquet")
    def run(out, **sel):
        cfg = load_config(None, {"selection": {"strategy": "entropy", "budget": 1, **sel}})
        return select_from_detections(cfg, tmp_path / "det.parquet", tmp_path / "L.json", tmp_path / out)
    assert run("paper")["pseudo_labelled"] == 1  # d only
    summary = run("tail", tau_rare=0.5)         # "rare" has 2 images in L: τ_rare applies to it
    assert summary["pseudo_labelled"] == 2 and summary["tau_rare"] == 0.5
    pseudo = json.loads((tmp_path / "tail" / "pseudo_labels.json").read_text())
    assert sorted(i["taast_image_id"] for i in pseudo["images"]) == ["a", "d"]
    assert sorted(a["category_id"] for a in pseudo["annotations"]) == [1, 2]  # a's box: the rare class
