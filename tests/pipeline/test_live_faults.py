"""`taast select --pool` faults (issue 17): bad models fail before Ray starts and before any file
is written; an unreachable address fails fast; a pool of unreadable images, dangling symlinks
and the files' row counts, through real Ray, Ultralytics (YOLOv8n from YAML) and open_clip."""
import json
import time

import pyarrow.parquet as pq
import pytest
from PIL import Image

import taast_ray.pipeline.live as live
from taast_ray.cli import main
from taast_ray.io import MANIFEST, check_output_set, list_parquet
from tests.factories import one_line, write_labels

TINY = ["--weights", "yolov8n.yaml", "--imgsz", "64", "--embedder", "taast-tiny-ViT", "--embedder-weights",
        "none", "--set", "selection.det_conf=0.001", "--set", "ray.batch_size=4", "--set",
        "ray.detector_actors_max=1", "--set", "ray.embedder_actors_max=1", "--tau", "0.5"]


@pytest.fixture()
def pool(tmp_path):
    root = tmp_path / "pool"
    root.mkdir()
    for i in range(10):
        Image.new("RGB", (48 + 4 * i, 40), (20 * i, 90, 200 - 10 * i)).save(root / f"img{i:02d}.jpg")
    return root, write_labels(tmp_path / "labels.json", [6, 3, 1, 0])


def select(pool, labels, out, *extra):
    return main([str(a) for a in ("select", "--pool", pool, "--labels", labels, "--out", out,
                                  "--budget", 2, *TINY, *extra)])



@pytest.fixture()
def ray_must_not_start(monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("Ray was started before the models were checked")

    monkeypatch.setattr(live, "ensure_ray", started)


@pytest.mark.parametrize("flags, message", [
    (["--weights", "CORRUPT"], "model.weights: cannot load"),
    (["--weights", "/no/such/weights.pt"], "model.weights: file not found: /no/such/weights.pt"),
    (["--weights", "yolov99.pt"], "model.weights: 'yolov99.pt' is neither a local file nor a model name"),
    (["--weights", "nosuch.yaml"], "model.weights: cannot build 'nosuch.yaml'"),
    (["--embedder", "NoSuchCLIP"], "model.embedder: unknown open_clip architecture 'NoSuchCLIP'"),
    (["--embedder", "ViT-B-32", "--embedder-weights", "bogus"], "model.embedder_weights: 'bogus' is not a pretrained tag"),
    (["--embedder-weights", "/no/such/clip.pt"], "model.embedder_weights: file not found"),
])
def test_bad_models_fail_before_ray_and_before_any_file(pool, tmp_path, capsys, ray_must_not_start, flags, message):
    images, labels = pool
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    flags = [str(corrupt) if f == "CORRUPT" else f for f in flags]
    assert select(images, labels, tmp_path / "fresh", *flags) == 2
    assert message in one_line(capsys)
    assert not (tmp_path / "fresh").exists()
    kept = tmp_path / "kept"  # an existing run directory is left exactly as it was
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert select(images, labels, kept, *flags, "--resume") == 2
    one_line(capsys)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_an_unreachable_address_fails_within_30_s(pool, tmp_path, capsys):
    images, labels = pool
    start = time.perf_counter()
    assert select(images, labels, tmp_path / "out", "--address", "127.0.0.1:1") == 2
    assert time.perf_counter() - start < 30
    assert "ray.address: cannot connect to 127.0.0.1:1" in one_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_pool_where_nothing_reads_still_publishes_errors_and_summary(tmp_path, capsys, ray_local):
    root = tmp_path / "bad"
    root.mkdir()
    for i in range(4):
        (root / f"broken{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg" * i)
    (root / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    labels = write_labels(tmp_path / "labels.json", [2, 1])
    out = tmp_path / "out"
    assert select(root, labels, out) == 2
    assert "none of the 5 images could be read" in one_line(capsys)
    assert {p.name for p in out.iterdir() if not p.is_dir()} == {"errors.parquet", "summary.json", "config.yaml",
                                                               MANIFEST}
    check_output_set(out)
    errors = {r["image_id"]: r["reason"] for r in pq.read_table(out / "errors.parquet").to_pylist()}
    assert set(errors) == {"broken0.jpg", "broken1.jpg", "broken2.jpg", "broken3.jpg", "gone.jpg"}
    assert errors["gone.jpg"].startswith("missing: dangling symlink to")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["errors"] == 5 and summary["selected"] == 0


@pytest.mark.slow
def test_dangling_symlinks_are_counted_and_files_hold_exactly_rows_per_file(pool, tmp_path, ray_local):
    images, labels = pool
    (images / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    out = tmp_path / "out"
    assert select(images, labels, out, "--rows-per-file", 4) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 1 and summary["pool_size"] == 10 and summary["selected"] == 2  # + 1 error
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert [(e["image_id"], e["stage"]) for e in errors] == [("dangling.jpg", "read")]
    rows = sorted(pq.read_metadata(f).num_rows for f in list_parquet(out / "detections"))
    assert rows == [3, 4, 4]  # 11 rows (the dangling one too) in files of exactly 4, the last one smaller
    check_output_set(out)
    assert not (out / ".taast.lock").exists()
