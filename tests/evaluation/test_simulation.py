"""A cycle's tail measures read from the files the loop writes (hand-made files, hand counts)."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray.evaluation.simulation import boxes_per_image, cycle_tail


def _gt(boxes: dict[int, list[int]]) -> dict:
    anns = [{"id": n, "image_id": i, "category_id": c, "bbox": [0, 0, 5, 5]}
            for n, (i, c) in enumerate((i, c) for i, cs in boxes.items() for c in cs)]
    return {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in boxes], "annotations": anns,
            "categories": [{"id": c} for c in (1, 2, 3)]}


def test_cycle_tail_from_files(tmp_path):
    # L0: class 1 in 10 images (c), class 3 in one (r), class 2 in none (r); pool: images 3-6
    l0 = _gt({1: [1, 3], **{i: [1] for i in range(101, 110)}})
    train = {**l0, "images": l0["images"] + _gt({3: [], 4: [], 5: [], 6: []})["images"],
             "annotations": l0["annotations"] + [
                 {"id": 900 + n, "image_id": i, "category_id": c, "bbox": [0, 0, 5, 5]}
                 for n, (i, c) in enumerate([(3, 3), (3, 3), (4, 1), (5, 2)])]}
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "l0.json").write_text(json.dumps(l0))
    cycle = tmp_path / "cycle_1"
    (cycle / "select" / "detections").mkdir(parents=True)
    pq.write_table(pa.table({"image_id": ["3", "4", "5", "6"]}), cycle / "pool.parquet")
    box = [[0.0, 0.0, 1.0, 1.0]]
    pq.write_table(pa.table({"image_id": ["3", "4", "5", "6"],
                             "boxes": [box, [], box + box, None],
                             "error": [None, None, None, "unreadable"]}),
                   cycle / "select" / "detections" / "part-0.parquet")
    pq.write_table(pa.table({"image_id": ["3", "4", "5", "6"],
                             "candidate_class": pa.array([2, None, 3, None], pa.int64()),
                             "selected": [True, False, False, True]}),
                   cycle / "select" / "scores.parquet")
    # P: image 4 with a right class-1 box (c) and a class-3 box where there is none (r)
    (cycle / "select" / "pseudo_labels.json").write_text(json.dumps({
        "images": [{"id": 4, "taast_image_id": "4"}], "categories": [],
        "annotations": [{"id": 1, "image_id": 4, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9},
                        {"id": 2, "image_id": 4, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.8}]}))
    assert boxes_per_image(cycle / "select" / "detections") == {"3": 1, "4": 0, "5": 2}
    got = cycle_tail(cycle / "pool.parquet", cycle / "select", cycle / "select" / "detections",
                     tmp_path / "train.json", tmp_path / "l0.json")
    # L0-rare: classes 2 (0 L0 images) and 3 (1); pool rare images: 3 (two of class 3), 5 (class 2)
    assert got["rare_classes"] == [2, 3]
    assert (got["pool_rare_images"], got["pool_rare_objects"]) == (2, 3)
    assert got["rare_images_selected"] == 1 and got["rare_images_random"] == pytest.approx(2 * 2 / 4)
    assert got["tail_lift"] == pytest.approx(1.0)
    assert got["candidate_rare_share"] == pytest.approx(1.0)  # c(x) named twice, both rare
    # coverage over object-bearing pool images that the detector read: 3, 4, 5 -> boxes on 3 and 5
    assert got["box_coverage"] == {"images": 3, "with_boxes": 2, "share": pytest.approx(2 / 3),
                                   "over": "object-bearing images"}
    # pseudo labels by L0 group: r 1 box, wrong, 3 rare objects in the pool; c 1 box, right, 1 object
    assert got["pseudo_labels"]["r"] == {"pseudo_boxes": 1, "true_positive": 0, "objects": 3, "precision": 0.0,
                                         "recall": 0.0, "recall_on_pseudo_images": None}
    assert (got["pseudo_labels"]["c"]["precision"], got["pseudo_labels"]["c"]["recall"]) == (1.0, 1.0)
    assert got["pseudo_labels"]["f"]["precision"] is None and got["pseudo_labels"]["f"]["recall"] is None
