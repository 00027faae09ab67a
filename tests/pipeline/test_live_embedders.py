"""The live pass with the offline embedders, through real Ray, Ultralytics (YOLOv8n) and FAISS:
``detector`` (pooled neck features written beside the detections, no embedder actors) and
``mobilenetv2-imagenet`` (the packaged ImageNet MobileNetV2 on the embedder actors)."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from taast_ray.config import load_config
from taast_ray.data.synth import make_synthetic_dataset
from taast_ray.pipeline.live import embedding_cache_dir, select_live
from taast_ray.pipeline.precomputed import select_from_detections

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("live_emb")
    make_synthetic_dataset(root / "synth", images=50, classes=4, seed=5, image_size=96)
    images = root / "synth" / "images" / "train"
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return images, root / "synth" / "annotations" / "train.json"


def config(embedder: str, weights: str = "none"):
    return load_config(None, {
        "selection": {"budget": 4, "det_conf": 0.001, "tau": 0.5, "seed": 7},
        "model": {"weights": "yolov8n.yaml", "imgsz": 64, "embedder": embedder, "embedder_weights": weights},
        "ray": {"batch_size": 8, "detector_actors_max": 1, "embedder_actors_max": 1}})


def selected(out: Path) -> list:
    return pq.read_table(out / "selection.parquet").column("image_id").to_pylist()


def test_detector_embedder_end_to_end(pool, tmp_path, ray_local):
    images, labels = pool
    out = tmp_path / "det"
    cfg = config("detector")
    summary = select_live(cfg, str(images), labels, out, rows_per_file=20)
    det = pq.read_table(out / "detections")
    assert det.schema.field("embedding").type.list_size == 448  # YOLOv8n: P3 64 + P4 128 + P5 256
    ok = det.filter(det.column("error").is_null())
    rows = np.array(ok.column("embedding").to_pylist(), np.float32)
    assert rows.shape == (ok.num_rows, 448) and ok.num_rows == det.num_rows - 1
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert det.filter(det.column("error").is_valid()).column("embedding").null_count == 1
    # the candidates' rows are the detector pass's own, read back: no embedder ran, nothing cached
    cand = pq.read_table(out / "detector_embeddings")
    assert cand.num_rows == summary["embedded"] == summary["candidates"] > 0
    by_id = dict(zip(ok.column("image_id").to_pylist(), rows))
    np.testing.assert_array_equal(np.array(cand.column("embedding").to_pylist(), np.float32),
                                  np.stack([by_id[i] for i in cand.column("image_id").to_pylist()]))
    assert not (out / "embedding_cache").exists()
    assert len(set(selected(out))) == 4 and json.loads((out / "summary.json").read_text())["embedded"] > 0
    # the offline core given the detections folder as the embeddings file picks the same images
    offline = tmp_path / "offline"
    select_from_detections(cfg, out / "detections", labels, offline, embeddings=out / "detections")
    assert selected(offline) == selected(out)


def test_mobilenet_embedder_end_to_end_and_cached(pool, tmp_path, ray_local):
    images, labels = pool
    cache = tmp_path / "cache"
    cfg = config("mobilenetv2-imagenet", "imagenet")
    first = select_live(cfg, str(images), labels, tmp_path / "a", rows_per_file=20, embedding_cache=cache)
    [folder] = [p for p in cache.iterdir() if p.is_dir()]
    assert folder.name.startswith("mobilenetv2-imagenet_imagenet-")
    cached = pq.read_table(folder)
    assert cached.num_rows == first["embedded"] > 0
    assert cached.schema.field("embedding").type.list_size == 1280
    z = np.array(cached.column("embedding").to_pylist(), np.float32)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    # the config's default tag names the same weights, so the same cache folder
    assert embedding_cache_dir(cache, config("mobilenetv2-imagenet", "openai")) == folder
    assert embedding_cache_dir(cache, config("mobilenetv2-imagenet", "none")) != folder
    assert len(set(selected(tmp_path / "a"))) == 4
