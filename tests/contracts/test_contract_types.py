"""Issue 17's malformed `select --detections` inputs: every column against its declared Arrow type
(SPEC.md §3), one line naming file, record and column, exit 2, never a traceback."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray.cli import main
from taast_ray.errors import InputError
from taast_ray.contracts.embeddings import ParquetEmbeddings
from taast_ray.contracts.pool import stream_pool
from tests.factories import detections_table, write_embeddings, write_labels

F32 = pa.list_(pa.list_(pa.float32()))
BOX = [[10.0, 10.0, 20.0, 30.0]]
SCORE = [[0.1, 0.7, 0.2]]


def good(n=4):
    return {"image_id": pa.array([f"img_{i}" for i in range(n)]),
            "boxes": pa.array([BOX] * n, F32), "scores": pa.array([SCORE] * n, F32),
            "width": pa.array([160] * n, pa.int32()), "height": pa.array([120] * n, pa.int32())}


def with_column(name, array, n=4):
    cols = good(n)
    cols[name] = array
    return pa.table(cols)


def inverted_boxes():
    boxes = [BOX] * 4
    boxes = boxes[:2] + [[[30.0, 10.0, 20.0, 30.0]]] + boxes[3:]
    return with_column("boxes", pa.array(boxes, F32))


CASES = {
    # issue 17's cases
    "non-numeric string scores": (with_column("scores", pa.array([[["high", "low", "x"]]] * 4)),
                                  ["column 'scores'", "list<list<string>>", "record"]),
    "boxes column of strings": (with_column("boxes", pa.array(["10,10,20,30"] * 4)),
                                ["column 'boxes'", "got string", "record"]),
    "width column of strings": (with_column("width", pa.array(["160"] * 4)),
                                ["column 'width'", "got string", "record"]),
    "flat list of floats as boxes": (with_column("boxes", pa.array([[10.0, 10.0, 20.0, 30.0]] * 4)),
                                     ["column 'boxes'", "got list<double>", "list<list<float32>>"]),
    "numeric strings as scores": (with_column("scores", pa.array([[["0.1", "0.7", "0.2"]]] * 4)),
                                  ["column 'scores'", "list<list<string>>"]),
    "integer image_ids": (with_column("image_id", pa.array([1, 2, 3, 4])),
                          ["column 'image_id'", "must be string, got int64"]),
    "box with x2 < x1": (inverted_boxes(), ["record 2, image 'img_2'", "x2 < x1", "column 'boxes'"]),
    # beyond issue 17
    "integer scores": (with_column("scores", pa.array([[[0, 1, 0]]] * 4)), ["column 'scores'", "int64"]),
    "boolean width": (with_column("width", pa.array([True] * 4)), ["column 'width'", "got bool"]),
    "zero width": (with_column("width", pa.array([160, 0, 160, 160], pa.int32())),
                   ["record 1, image 'img_1'", "non-positive 'width'"]),
    "null image_id": (with_column("image_id", pa.array(["a", None, "c", "d"])),
                      ["record 1", "null image_id", "column 'image_id'"]),
    "uri of integers": (with_column("uri", pa.array([1, 2, 3, 4])), ["column 'uri'", "int64"]),
    "box with y2 < y1": (with_column("boxes", pa.array([BOX, BOX, BOX, [[1.0, 9.0, 5.0, 2.0]]], F32)),
                         ["record 3, image 'img_3'", "y2 < y1"]),
    "scores row too short": (with_column("scores", pa.array([SCORE, SCORE, [[0.5, 0.5]], SCORE], F32)),
                             ["record 2, image 'img_2'", "scores row of width 2", "column 'scores'"]),
    "null score value": (with_column("scores", pa.array([SCORE, [[0.1, None, 0.2]], SCORE, SCORE], F32)),
                         ["record 1, image 'img_1'", "null scores value"]),
}


@pytest.fixture()
def labels(tmp_path):
    return write_labels(tmp_path / "labels.json", [3, 2, 1])


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_detections_exit_2_with_one_line(case, tmp_path, labels, capsys):
    table, needles = CASES[case]
    path = tmp_path / "det.parquet"
    pq.write_table(table, path)
    out = tmp_path / "out"
    assert main(["select", "--detections", str(path), "--labels", str(labels), "--budget", "2",
                 "--strategy", "entropy", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()


def test_float64_scores_and_large_strings_are_accepted(tmp_path):
    cols = good()
    cols["scores"] = pa.array([SCORE] * 4, pa.list_(pa.list_(pa.float64())))
    cols["image_id"] = pa.array([f"img_{i}" for i in range(4)], pa.large_string())
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    pool = stream_pool(tmp_path / "d.parquet", 3, 0.8)
    assert pool.num_images == 4 and pool.num_boxes == 4 and not pool.pseudo.any()
    pool.close()


def test_the_bad_file_of_a_folder_is_named(tmp_path):
    folder = tmp_path / "dets"
    folder.mkdir()
    pq.write_table(detections_table(20, 3, seed=1), folder / "part-0.parquet")
    bad = detections_table(20, 3, seed=2)
    bad = bad.set_column(0, "image_id", pa.array(range(100, 120)))
    pq.write_table(bad, folder / "part-1.parquet")
    with pytest.raises(InputError, match="part-1.parquet: column 'image_id' must be string"):
        stream_pool(folder, 3, 0.8)


def test_a_record_is_named_by_its_row_in_its_file_across_batches(tmp_path):
    t = detections_table(50, 3, seed=4)
    boxes = t.column("boxes").to_pylist()
    boxes[37] = [[5.0, 5.0, 1.0, 9.0]] + boxes[37][1:]
    t = t.set_column(1, "boxes", pa.array(boxes, F32))
    pq.write_table(t, tmp_path / "d.parquet", row_group_size=9)
    with pytest.raises(InputError, match=r"d.parquet: record 37, image 'img_00037' has a box with x2 < x1"):
        stream_pool(tmp_path / "d.parquet", 3, 0.8, batch_rows=8)


EMBEDDING_CASES = {
    "embedding of strings": (lambda ids: pa.table({"image_id": ids, "embedding": pa.array([["0.1", "0.2"]] * len(ids))}),
                             "column 'embedding' must be list<float32>, got list<string>"),
    "flat float embedding": (lambda ids: pa.table({"image_id": ids, "embedding": pa.array([0.5] * len(ids))}),
                             "column 'embedding' must be list<float32>, got double"),
    "integer image_id": (lambda ids: pa.table({"image_id": pa.array(range(len(ids))),
                                               "embedding": pa.array([[0.1, 0.2]] * len(ids), pa.list_(pa.float32()))}),
                         "column 'image_id' must be string, got int64"),
    "null inside an embedding": (lambda ids: pa.table({"image_id": ids, "embedding": pa.array(
        [[0.1, None]] * len(ids), pa.list_(pa.float32()))}), "has a null value"),
    "missing embedding column": (lambda ids: pa.table({"image_id": ids}), "missing embedding"),
}


@pytest.mark.parametrize("case", list(EMBEDDING_CASES))
def test_malformed_embeddings_exit_2_with_one_line(case, tmp_path, labels, capsys):
    det = tmp_path / "det.parquet"
    pq.write_table(detections_table(30, 3, seed=3), det)
    ids = pa.array(pq.read_table(det).column("image_id").to_pylist())
    make, needle = EMBEDDING_CASES[case]
    emb = tmp_path / "emb.parquet"
    pq.write_table(make(ids), emb)
    assert main(["select", "--detections", str(det), "--embeddings", str(emb), "--labels", str(labels),
                 "--budget", "3", "--strategy", "taast", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(emb) in err and needle in err, err


def test_embedding_lookup_streams_batches_and_keeps_the_order(tmp_path, monkeypatch):
    import taast_ray.contracts.embeddings as embeddings

    monkeypatch.setattr(embeddings, "BATCH_ROWS", 7)
    ids = [f"e{i:03d}" for i in range(60)]
    path = write_embeddings(tmp_path / "e.parquet", ids, dim=5, seed=1)
    full = np.array(pq.read_table(path).column("embedding").to_pylist(), np.float32)
    emb = ParquetEmbeddings(path)
    want = [59, 3, 31, 8, 0, 44]
    np.testing.assert_array_equal(emb.get([ids[i] for i in want]), full[want])
    monkeypatch.setattr(embeddings, "MEMMAP_BYTES", 16)  # past the limit: a memory-mapped result
    mapped = emb.get([ids[i] for i in want])
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, full[want])
