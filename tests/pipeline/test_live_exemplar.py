"""taast-exemplar's live pass, through real Ray and Ultralytics: L's prototypes from its own
images, each pool image's exemplar posteriors written beside its boxes by the detector actors,
and the selection from them (live and offline alike)."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray.config import load_config
from taast_ray.data.synth import make_synthetic_dataset
from taast_ray.errors import InputError
from taast_ray.pipeline.live import select_live
from taast_ray.pipeline.precomputed import select_from_detections

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("live_exemplar")
    make_synthetic_dataset(root / "synth", images=50, classes=4, seed=5, image_size=96)
    images = root / "synth" / "images"
    (images / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return images, root / "synth" / "annotations"


def config():
    return load_config(None, {
        "selection": {"strategy": "taast-exemplar", "budget": 4, "det_conf": 0.001, "tau": 0.5, "seed": 7},
        "model": {"weights": "yolov8n.yaml", "imgsz": 64, "embedder": "detector"},
        "ray": {"batch_size": 8, "detector_actors_max": 1}})


def selected(out: Path) -> list:
    return pq.read_table(out / "selection.parquet").column("image_id").to_pylist()


def test_exemplar_posteriors_are_written_and_selected_from(data, tmp_path, ray_local):
    images, annotations = data
    labels = annotations / "val.json"  # L: the val split's images, relative to the images folder
    out = tmp_path / "run"
    summary = select_live(config(), str(images / "train"), labels, out, rows_per_file=20,
                          labelled_images=images)
    import json
    val = json.loads(labels.read_text())
    assert summary["exemplars"]["boxes"] == len(val["annotations"]) > 0
    assert summary["exemplars"]["unreadable"] == 0 and summary["exemplars"]["classes_with_exemplars"] == 4
    det = pq.read_table(out / "detections")
    assert det.schema.field("exemplar").type == pa.list_(pa.float32(), 4)
    ok = det.filter(det.column("error").is_null())
    v = np.array(ok.column("exemplar").to_pylist(), np.float32)
    assert v.shape == (ok.num_rows, 4) and ((v >= 0) & (v <= 1)).all()
    has_boxes = np.array([len(b) > 0 for b in ok.column("boxes").to_pylist()])
    # each row is a max of softmax rows: its largest entry is at least 1/4 where the image has boxes
    assert (v[has_boxes].max(1) >= 0.25 - 1e-6).all() and (v[~has_boxes] == 0).all()
    assert det.filter(det.column("error").is_valid()).column("exemplar").null_count == 1
    assert len(set(selected(out))) == 4
    # offline, from the same detections: the same picks
    offline = tmp_path / "offline"
    select_from_detections(config(), out / "detections", labels, offline, embeddings=out / "detections")
    assert selected(offline) == selected(out)


def test_detections_without_posteriors_fail_in_one_line(data, tmp_path):
    images, annotations = data
    table = pa.table({"image_id": ["a", "b"], "boxes": [[[0.0, 0.0, 5.0, 5.0]], []],
                      "scores": [[[0.5, 0.2, 0.1, 0.1]], []]})
    pq.write_table(table, tmp_path / "det.parquet")
    emb = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"image_id": ["a", "b"], "embedding": [[1.0, 0.0], [0.0, 1.0]]}), emb)
    with pytest.raises(InputError, match=r"det.parquet: no 'exemplar' column"):
        select_from_detections(config(), tmp_path / "det.parquet", annotations / "val.json", tmp_path / "o",
                               embeddings=emb)
    pq.write_table(table.append_column("exemplar", pa.array([[0.1, 0.2, 1.5, 0.0], [0.0] * 4])),
                   tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=r"record 0, image 'a' has an 'exemplar' value outside \[0, 1\]"):
        select_from_detections(config(), tmp_path / "bad.parquet", annotations / "val.json", tmp_path / "o2",
                               embeddings=emb)
