"""Reading the detections contract, and every bad input of SPEC.md §7 as a one-line error."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray.data.labels import load_labels
from taast_ray.errors import InputError
from taast_ray.contracts.detections import flatten_detections
from taast_ray.contracts.embeddings import ParquetEmbeddings
from tests.factories import detections_table, write_labels, embeddings_table, read_detections

F32 = pa.list_(pa.list_(pa.float32()))


def table(ids, boxes, scores):
    return pa.table({"image_id": ids, "boxes": pa.array(boxes, F32), "scores": pa.array(scores, F32)})


def test_flatten_round_trip():
    t = detections_table(50, 4, seed=3)
    det = flatten_detections(t, 4)
    assert det.num_images == 50 and det.scores.shape == (det.offsets[-1], 4)
    row = 7
    np.testing.assert_allclose(det.scores[det.offsets[row]:det.offsets[row + 1]],
                               np.array(t.column("scores")[row].as_py(), dtype=np.float32).reshape(-1, 4))


@pytest.mark.parametrize("ids, boxes, scores, message", [
    (["a", "a"], [[], []], [[], []], "duplicate image_id 'a'"),
    (["a", "b"], [[[0, 0, 1, 1]], []], [[], []], "image 'a' has 1 boxes but 0 score rows"),
    (["a"], [[[0, 0, 1, 1]]], [[[0.1, 0.2]]], "image 'a' has a scores row of width 2, expected 3"),
    (["a", "b"], [[], [[0, 0, 1, 1]]], [[], [[0.1, float("nan"), 0.2]]], "image 'b' has a NaN"),
    (["a"], [[[0, 0, 1, 1]]], [[[0.1, 1.5, 0.2]]], "out-of-range"),
    (["a"], [[[0, 0, 1, 1]]], [[[0.1, -0.1, 0.2]]], "out-of-range"),
    (["a"], [[[0, 0, float("inf"), 1]]], [[[0.1, 0.1, 0.2]]], "image 'a' has a non-finite box"),
    (["a"], [[[0, 0, 1]]], [[[0.1, 0.1, 0.2]]], "boxes row of width 3, expected 4"),
])
def test_bad_records_are_named(ids, boxes, scores, message):
    with pytest.raises(InputError, match=message) as err:
        flatten_detections(table(ids, boxes, scores), 3, source="d.parquet")
    assert str(err.value).startswith("d.parquet: ") and "\n" not in str(err.value)


def test_empty_pool_and_missing_columns(tmp_path):
    with pytest.raises(InputError, match="empty"):
        flatten_detections(table([], [], []), 3)
    with pytest.raises(InputError, match="missing column"):
        flatten_detections(pa.table({"image_id": ["a"]}), 3)
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    with pytest.raises(InputError, match="x.parquet: not a readable parquet"):
        read_detections(bad, 3)


def test_labels_validation(tmp_path):
    good = write_labels(tmp_path / "l.json", [3, 0, 5])
    labels = load_labels(good)
    assert labels.class_counts().tolist() == [3, 0, 5]
    raw = json.loads(good.read_text())
    cases = {
        r"annotation 1 category_id: unknown category 99$": lambda d: d["annotations"][0].update(category_id=99),
        r"annotation 1 bbox\[2\]: must be > 0, got 0$": lambda d: d["annotations"][0].update(bbox=[1, 1, 0, 5]),
        r"images\[5\] id: duplicate image id 1 \(also images\[0\]\)$":
            lambda d: d["images"].append(dict(d["images"][0])),
    }
    for message, mutate in cases.items():
        data = json.loads(json.dumps(raw))
        mutate(data)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data))
        with pytest.raises(InputError, match=message) as err:
            load_labels(path)
        assert str(err.value).startswith(str(path))


def test_class_counts_by_boxes(tmp_path):
    path = write_labels(tmp_path / "l.json", [2, 1])
    data = json.loads(path.read_text())
    data["annotations"].append(dict(data["annotations"][0], id=99))  # second box, same image
    path.write_text(json.dumps(data))
    labels = load_labels(path)
    assert labels.class_counts("images").tolist() == [2, 1]
    assert labels.class_counts("boxes").tolist() == [3, 1]


def test_embeddings_lookup(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    pq.write_table(embeddings_table(["a", "b", "c"], x), tmp_path / "e.parquet")
    emb = ParquetEmbeddings(tmp_path / "e.parquet")
    np.testing.assert_array_equal(emb.get(["c", "a"]), x[[2, 0]])
    assert emb.get_present(["zz", "b"]).tolist() == [x[1].tolist()]
    with pytest.raises(InputError, match="no embedding for candidate image_id 'zz'"):
        emb.get(["a", "zz"])


def test_streamed_read_matches_flatten_across_batches_and_folders(tmp_path):
    t = detections_table(90, 4, seed=9)
    pq.write_table(t, tmp_path / "d.parquet", row_group_size=17)
    whole = flatten_detections(t, 4)
    for source in (tmp_path / "d.parquet", tmp_path):
        det = read_detections(source, 4, batch_rows=10)
        np.testing.assert_array_equal(det.offsets, whole.offsets)
        np.testing.assert_array_equal(det.scores, whole.scores)
        np.testing.assert_array_equal(det.boxes, whole.boxes)
        assert det.image_ids.tolist() == whole.image_ids.tolist()
        np.testing.assert_array_equal(det.width, whole.width)


def test_streamed_read_finds_a_duplicate_in_another_batch(tmp_path):
    t = detections_table(30, 3, seed=1)
    ids = t.column("image_id").to_pylist()
    ids[25] = ids[2]
    pq.write_table(t.set_column(0, "image_id", pa.array(ids)), tmp_path / "d.parquet")
    with pytest.raises(InputError, match=f"duplicate image_id '{ids[2]}'"):
        read_detections(tmp_path / "d.parquet", 3, batch_rows=8)
