"""The live pass through real Ray, Ultralytics (YOLOv8n), open_clip (a tiny ViT) and FAISS."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taast_ray.config import load_config
from taast_ray.data.synth import make_synthetic_dataset
from taast_ray.io import check_output_set, list_parquet
from taast_ray.pipeline.live import select_live
from taast_ray.stages.detect import DetectStage

pytestmark = pytest.mark.slow
SLOW_SELECT = Path(__file__).parents[1] / "slow_select.py"  # taast select, detector slowed (a test double)
BAD = {"broken.jpg": b"\xff\xd8\xff\xe0 not really a jpeg", "empty.jpg": b"", "notes.png": b"hello"}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """A small synthetic pool (the train split's JPEGs) plus bad and odd-mode files."""
    root = tmp_path_factory.mktemp("live")
    make_synthetic_dataset(root / "synth", images=60, classes=4, seed=3, image_size=96)
    images = root / "synth" / "images" / "train"
    for name, data in BAD.items():
        (images / name).write_bytes(data)
    Image.new("L", (80, 60), 128).save(images / "gray_odd.png")
    Image.new("CMYK", (70, 50), (0, 50, 100, 0)).save(images / "cmyk_odd.jpg")
    return images, root / "synth" / "annotations" / "train.json"


def config(**ray_overrides):
    overrides = {"selection": {"budget": 4, "det_conf": 0.001, "tau": 0.5, "seed": 7},
                 "model": {"weights": "yolov8n.yaml", "imgsz": 64, "embedder": "taast-tiny-ViT",
                           "embedder_weights": "none"},
                 "ray": {"batch_size": 8, **ray_overrides}}
    return load_config(None, overrides)


def selected(out: Path) -> list:
    return pq.read_table(out / "selection.parquet").column("image_id").to_pylist()


@pytest.fixture(scope="module")
def baseline(pool, tmp_path_factory, ray_local):
    images, labels = pool
    out = tmp_path_factory.mktemp("baseline") / "run"
    summary = select_live(config(detector_actors_min=1, detector_actors_max=1), str(images), labels,
                          out, rows_per_file=20)
    return out, summary


def test_outputs_match_the_contract_and_bad_images_are_recorded(pool, baseline):
    images, _ = pool
    out, summary = baseline
    n_files = len([p for p in images.iterdir() if p.is_file()])
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert {e["image_id"] for e in errors} == set(BAD)
    assert all(e["reason"] and e["stage"] for e in errors)
    scores = pq.read_table(out / "scores.parquet")
    assert scores.num_rows == n_files - len(BAD)  # every good image scored, odd modes converted
    assert {"gray_odd.png", "cmyk_odd.jpg"} <= set(scores.column("image_id").to_pylist())
    assert summary["converted"] >= 2 and summary["errors"] == len(BAD)
    assert {e["stage"] for e in errors} == {"decode"}  # each stamped by the step that set it aside
    assert sum(summary["errors_by_reason"].values()) == len(BAD)
    assert summary["errors_by_reason"]["dropped_empty"] == 1
    sel = pq.read_table(out / "selection.parquet")
    assert sel.column_names == ["image_id", "rank", "score", "cluster", "fill", "uri"]
    assert sel.num_rows == 4 and len(set(selected(out))) == 4
    det = pq.read_table(out / "detections")
    assert {"image_id", "boxes", "scores", "width", "height"} <= set(det.column_names)
    rows = sorted((pq.read_metadata(f).num_rows for f in list_parquet(out / "detections")), reverse=True)
    assert rows[:-1] == [20] * (len(rows) - 1) and 0 < rows[-1] <= 20  # --rows-per-file 20: exactly
    for name in ("pseudo_labels.json", "label_studio_tasks.json", "summary.json", "config.yaml"):
        assert (out / name).exists()
    assert set(check_output_set(out)["files"]) >= {"errors.parquet", "scores.parquet", "config.yaml"}
    assert json.loads((out / "summary.json").read_text())["embedded"] > 0


def test_same_selection_with_two_detector_actors(pool, baseline, tmp_path):
    images, labels = pool
    out = tmp_path / "two"
    select_live(config(detector_actors_min=2, detector_actors_max=2), str(images), labels, out,
                rows_per_file=20)
    assert selected(out) == selected(baseline[0])


class PixelsOnlyDetectStage(DetectStage):
    """DetectStage that fails its batch unless CPU decode tasks already decoded it."""

    def __call__(self, batch):
        assert "pixels" in batch.column_names and "bytes" not in batch.column_names, batch.column_names
        return super().__call__(batch)


def test_decode_tasks_give_the_same_scores_errors_and_selection(pool, baseline, tmp_path):
    """ray.decode: tasks — CPU tasks decode, the actors get pixels: nothing else may change."""
    images, labels = pool
    out = tmp_path / "tasks"
    summary = select_live(config(detector_actors_max=1, decode="tasks", decode_cpus=0.5), str(images), labels,
                          out, rows_per_file=20, detect_stage_cls=PixelsOnlyDetectStage)
    assert selected(out) == selected(baseline[0])
    assert summary["converted"] == baseline[1]["converted"] and summary["errors"] == baseline[1]["errors"]
    ours, ref = (pq.read_table(o / "scores.parquet").sort_by("image_id") for o in (out, baseline[0]))
    assert ours.column("image_id").equals(ref.column("image_id"))
    np.testing.assert_allclose(ours.column("entropy").to_numpy(), ref.column("entropy").to_numpy(), rtol=1e-5)
    assert ours.column("candidate").equals(ref.column("candidate"))
    errors = [pq.read_table(o / "errors.parquet").sort_by("image_id").to_pylist() for o in (out, baseline[0])]
    assert errors[0] == errors[1]


def test_resume_after_the_driver_is_killed_mid_pass(pool, baseline, tmp_path, ray_local):
    images, labels = pool
    out = tmp_path / "killed"
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, str(SLOW_SELECT), "--hold-once-written", str(out / "detections"),
           "select", "--pool", str(images), "--labels", str(labels),
           "--out", str(out), "--rows-per-file", "8", "--budget", "4", "--seed", "7", "--tau", "0.5",
           "--weights", "yolov8n.yaml", "--imgsz", "64", "--embedder", "taast-tiny-ViT",
           "--embedder-weights", "none", "--set", "selection.det_conf=0.001", "--set", "ray.batch_size=8",
           "--set", "ray.detector_actors_max=1", "--address", address]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while not list_parquet(out / "detections"):
        assert proc.poll() is None and time.time() < deadline, "no detections file was ever written"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "taast_ray.cli", *cmd[4:], "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    total = len(pq.read_table(baseline[0] / "detections"))
    before = int(re.search(r"(\d+) detected before", resumed.stdout).group(1))
    assert 8 <= before < total, resumed.stdout  # killed mid-pass; the written files were kept
    det = pq.read_table(out / "detections").column("image_id").to_pylist()
    assert len(det) == len(set(det)) == total  # nothing lost, nothing run twice
    assert selected(out) == selected(baseline[0])


class CrashOnceDetectStage(DetectStage):
    """Test double around the real stage: its first call in the whole run kills its own process."""

    flag: str = ""

    def __call__(self, batch):
        if not os.path.exists(self.flag):
            Path(self.flag).write_text("crashed")
            os._exit(1)
        return super().__call__(batch)


def test_a_killed_detector_actor_is_restarted_and_nothing_is_lost(pool, baseline, tmp_path, ray_local):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    images, labels = pool
    CrashOnceDetectStage.flag = str(tmp_path / "crashed.flag")
    out = tmp_path / "crash"
    select_live(config(detector_actors_min=1, detector_actors_max=1), str(images), labels, out,
                rows_per_file=1000, detect_stage_cls=CrashOnceDetectStage)
    assert (tmp_path / "crashed.flag").exists()
    det = pq.read_table(out / "detections").column("image_id").to_pylist()
    assert len(det) == len(set(det)) == len(pq.read_table(baseline[0] / "detections"))
    assert selected(out) == selected(baseline[0])


def test_a_tail_aware_variant_live_is_the_core_on_its_own_detections(pool, tmp_path, ray_local):
    """taast-expected through the live pool (its per-image score rows spooled in the aggregator)
    selects what the selection core selects from the detections and embeddings it wrote."""
    from dataclasses import replace

    from taast_ray.pipeline.live import embedding_cache_dir
    from taast_ray.pipeline.precomputed import select_from_detections

    images, labels = pool
    cfg = config(detector_actors_min=1, detector_actors_max=1)
    cfg = replace(cfg, selection=replace(cfg.selection, strategy="taast-expected"))
    out = tmp_path / "live"
    summary = select_live(cfg, str(images), labels, out, rows_per_file=20)
    assert summary["strategy"] == "taast-expected" and summary["selected"] == 4
    core = select_from_detections(cfg, out / "detections", labels, tmp_path / "core",
                                  embedding_cache_dir(out / "embedding_cache", cfg))
    assert selected(out) == selected(tmp_path / "core") and core["candidates"] == summary["candidates"]
    live_scores = pq.read_table(out / "scores.parquet").to_pydict()
    assert live_scores == pq.read_table(tmp_path / "core" / "scores.parquet").to_pydict()
