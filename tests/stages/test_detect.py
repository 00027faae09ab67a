"""detect.py: the batch table built from flat arrays equals the per-image list path it replaced."""
import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

import taast_ray  # noqa: F401  (before Ultralytics)
from taast_ray.models.detector import BoxRows
from taast_ray.bench.pillow_decode import decode_batch
from taast_ray.stages.detect import DETECTIONS_SCHEMA, DetectStage, detections_schema, detections_table
from taast_ray.stages.tensor_decode import DecodedBatch

C = 3


def list_path_table(decoded: DecodedBatch, per_image: dict) -> pa.Table:
    """How the stage built its table before: Python lists per image, empty for failed rows."""
    empty = (np.zeros((0, 4), np.float32), np.zeros((0, C), np.float32))
    n = len(decoded.images)
    return pa.Table.from_pydict({
        "image_id": [str(v) for v in decoded.image_id], "uri": decoded.uri or [None] * n,
        "boxes": [per_image.get(i, empty)[0].tolist() for i in range(n)],
        "scores": [per_image.get(i, empty)[1].tolist() for i in range(n)],
        "width": decoded.width, "height": decoded.height, "error": decoded.error,
        "error_stage": decoded.error_stage, "converted": decoded.converted}, schema=DETECTIONS_SCHEMA)


@pytest.mark.parametrize("with_uri", [True, False])
def test_flat_table_equals_the_list_path(with_uri):
    rng = np.random.default_rng(0)
    ok = [0, 2, 3, 5]
    images = [np.zeros((4, 4, 3), np.uint8) if i in ok else None for i in range(6)]
    decoded = DecodedBatch([f"x{i}" for i in range(6)], [f"/p/x{i}" for i in range(6)] if with_uri else None,
                           images, np.arange(6, dtype=np.int32), np.arange(6, dtype=np.int32) * 2,
                           [None if i in ok else "corrupt: bad" for i in range(6)],
                           ["gray->rgb" if i == 3 else None for i in range(6)])
    counts = [2, 0, 5, 1]  # a decoded image with no boxes, too
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rows = BoxRows(rng.random((8, 4), np.float32) * 100, rng.random((8, C), np.float32), offsets)
    per_image = {i: (rows.boxes[a:b], rows.scores[a:b]) for i, a, b in zip(ok, offsets[:-1], offsets[1:])}
    table = detections_table(decoded, rows)
    assert table.schema == DETECTIONS_SCHEMA
    assert table.equals(list_path_table(decoded, per_image))
    assert [len(b) for b in table.column("boxes").to_pylist()] == [2, 0, 0, 5, 0, 1]


def test_stage_matches_the_detector_on_pillow_decoded_images():
    rng = np.random.default_rng(1)
    data = []
    for h, w in [(72, 96), (64, 64), (50, 120)]:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(buf, "JPEG")
        data.append(buf.getvalue())
    batch = {"image_id": ["a", "b", "bad", "c"], "bytes": data[:2] + [b"nope"] + data[2:]}
    stage = DetectStage("yolov8n.yaml", imgsz=64, conf=0.0005, num_classes=C, device="cpu")
    table = stage(batch)
    arrays = [im for im in decode_batch(batch)["image"] if im is not None]
    expected = stage.detector.predict(arrays)
    got = table.to_pydict()
    assert got["error"] == [None, None, "not an image", None] and got["boxes"][2] == []
    for row, (boxes, scores) in zip([0, 1, 3], expected):
        assert len(boxes) > 0
        np.testing.assert_allclose(np.array(got["boxes"][row], np.float32), boxes, atol=1e-3)
        np.testing.assert_allclose(np.array(got["scores"][row], np.float32), scores, atol=1e-5)


def test_embedding_column_beside_the_detections():
    """embed=True: an ``embedding`` fixed_size_list column, the detector's own rows for decoded
    images, null for failed ones; the other columns as without it."""
    rng = np.random.default_rng(2)
    data = []
    for h, w in [(72, 96), (64, 64)]:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(buf, "JPEG")
        data.append(buf.getvalue())
    batch = {"image_id": ["a", "bad", "b"], "bytes": [data[0], b"nope", data[1]]}
    stage = DetectStage("yolov8n.yaml", imgsz=64, conf=0.0005, num_classes=C, device="cpu", embed=True)
    table = stage(batch)
    assert table.schema == detections_schema(448) and table.schema.field("embedding").type.list_size == 448
    plain = DetectStage("yolov8n.yaml", imgsz=64, conf=0.0005, num_classes=C, device="cpu")(batch)
    assert table.drop_columns(["embedding"]).equals(plain)
    emb = table.column("embedding").to_pylist()
    assert emb[1] is None and table.column("embedding").null_count == 1
    expected = stage.detector.predict_rows([im for im in decode_batch(batch)["image"] if im is not None])
    np.testing.assert_allclose(np.array([emb[0], emb[2]], np.float32), expected.embeddings, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.array([emb[0], emb[2]]), axis=1), 1.0, atol=1e-5)
    # a batch with nothing decoded still carries the column, all null
    none = stage({"image_id": ["x"], "bytes": [b"nope"]})
    assert none.schema == table.schema and none.column("embedding").null_count == 1


def _decoded(ids, ok):
    n = len(ids)
    return DecodedBatch(list(ids), None, [np.zeros((4, 4, 3), np.uint8) if i in ok else None for i in range(n)],
                        np.full(n, 4, np.int32), np.full(n, 4, np.int32),
                        [None if i in ok else "corrupt: bad" for i in range(n)], [None] * n)


def test_embeddings_from_detections_reads_only_the_wanted_rows(tmp_path):
    import pyarrow.parquet as pq

    from taast_ray.errors import InputError
    from taast_ray.stages.detect import embeddings_from_detections

    rng = np.random.default_rng(4)
    folder = tmp_path / "detections"
    folder.mkdir()
    emb = {}
    for part, ids in enumerate([["a", "b", "c"], ["d", "e"]]):
        ok = [i for i, name in enumerate(ids) if name != "c"]  # c did not decode
        rows = BoxRows.empty(len(ok), C, 6)
        rows.embeddings = rng.random((len(ok), 6)).astype(np.float32)
        emb.update({ids[i]: rows.embeddings[j] for j, i in enumerate(ok)})
        pq.write_table(detections_table(_decoded(ids, ok), rows), folder / f"part{part}.parquet")
    wanted = pa.table({"image_id": ["e", "a", "c", "zz"], "uri": [None] * 4})
    assert embeddings_from_detections(folder, wanted, tmp_path / "emb") == 2  # c is null, zz absent
    out = pq.read_table(tmp_path / "emb").sort_by("image_id")
    assert out.column_names == ["image_id", "embedding"] and out.column("image_id").to_pylist() == ["a", "e"]
    np.testing.assert_array_equal(np.array(out.column("embedding").to_pylist(), np.float32),
                                  np.stack([emb["a"], emb["e"]]))
    # detections written without the column (another model.embedder, then --resume): named, one line
    plain = tmp_path / "plain"
    plain.mkdir()
    pq.write_table(detections_table(_decoded(["a"], [0]), BoxRows.empty(1, C)), plain / "p.parquet")
    with pytest.raises(InputError, match="no 'embedding' column"):
        embeddings_from_detections(plain, wanted, tmp_path / "emb2")
