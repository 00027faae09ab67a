"""`taast run`: full cycles through Ray Train, the oracle and LVIS/COCO evaluation; resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import yaml

from taast_ray.config import load_config
from taast_ray.data.yolo import yolo_line
from taast_ray.evaluation.metrics import METRIC_KEYS
from taast_ray.loop.cycle import run_cycles

pytestmark = pytest.mark.slow
SETTINGS = {
    "data": {"synthetic_images": 160, "synthetic_classes": 4, "synthetic_image_size": 64},
    "selection": {"budget": 6, "seed": 5, "det_conf": 0.01},
    "model": {"weights": "yolov8n.yaml", "embedder": "taast-tiny-ViT", "embedder_weights": "none"},
    "train": {"imgsz": 64, "batch": 8, "workers": 2, "warmup_epochs": 1, "epochs": 1,
              "optimizer": "AdamW", "lr0": 0.002},
    "protocol": {"cycles": 1, "seed_fraction": 0.2},
    "ray": {"detector_actors_max": 1, "embedder_actors_max": 1, "batch_size": 16},
}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, ray_local):
    run = tmp_path_factory.mktemp("cycle") / "run"
    rows = run_cycles(load_config(None, SETTINGS), run)
    return run, rows


def test_a_cycle_writes_metrics_and_grows_the_labelled_set(baseline):
    run, rows = baseline
    assert [r["cycle"] for r in rows] == [0, 1]
    for t in (0, 1):
        metrics = json.loads((run / f"cycle_{t}" / "metrics.json").read_text())
        assert all(0.0 <= metrics[k] <= 1.0 for k in METRIC_KEYS)
    selected = pq.read_table(run / "cycle_1" / "select" / "selection.parquet").column("image_id").to_pylist()
    l0 = json.loads((run / "data" / "labels_L0.json").read_text())
    l1 = json.loads((run / "cycle_1" / "labels.json").read_text())
    assert len(l1["images"]) == len(l0["images"]) + 6
    assert {str(i["id"]) for i in l1["images"]} == {str(i["id"]) for i in l0["images"]} | set(selected)
    train_set = json.loads((run / "cycle_1" / "train_set.json").read_text())
    pseudo = json.loads((run / "cycle_1" / "select" / "pseudo_labels.json").read_text())
    manual_ids = {i["id"] for i in l1["images"]}
    assert {i["id"] for i in train_set["images"]} == manual_ids | {i["id"] for i in pseudo["images"]}
    assert (run / "cycle_1" / "yolo" / "dataset.yaml").exists() and (run / "test_metrics.json").exists()
    # what Ultralytics trains on: every image of L ∪ Q ∪ P, each with its label file
    labels = sorted((run / "cycle_1" / "yolo" / "labels" / "train").glob("*.txt"))
    assert len(labels) == len(train_set["images"])
    sizes = {i["id"]: (i["width"], i["height"]) for i in train_set["images"]}
    boxes = [a for a in train_set["annotations"] if yolo_line(a["bbox"], *sizes[a["image_id"]], 0)]
    assert sum(len(p.read_text().splitlines()) for p in labels) == len(boxes)


def wait_for(predicate, proc, seconds=300):
    deadline = time.time() + seconds
    while not predicate():
        assert proc.poll() is None, "the run ended before the moment to kill it"
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_resume_after_kills_between_stages_and_mid_training(baseline, tmp_path, ray_local):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(SETTINGS))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "taast_ray.cli", "run", "--config", str(config), "--out", str(run),
           "--address", ray_local.get_runtime_context().gcs_address]

    def start(extra=()):
        return subprocess.Popen(cmd + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def kill(proc):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    proc = start()
    wait_for(lambda: (run / "cycle_1" / "_markers" / "select.done").exists(), proc)
    kill(proc)  # between stages
    proc = start(["--resume"])
    wait_for(lambda: (run / "cycle_1" / "train" / "runs").exists(), proc)
    kill(proc)  # mid-training
    assert not (run / "cycle_1" / "_markers" / "train.done").exists()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    base, _ = baseline
    for path in ("cycle_1/select/selection.parquet",):
        assert pq.read_table(run / path).column("image_id").to_pylist() == \
            pq.read_table(base / path).column("image_id").to_pylist()
    for t in (0, 1):
        ours = json.loads((run / f"cycle_{t}" / "metrics.json").read_text())
        theirs = json.loads((base / f"cycle_{t}" / "metrics.json").read_text())
        assert {k: ours[k] for k in METRIC_KEYS} == {k: theirs[k] for k in METRIC_KEYS}


def test_production_run_stops_for_annotators_then_ingests(baseline, tmp_path):
    import shutil

    from taast_ray.data.split import oracle_labels
    from taast_ray.errors import InputError
    from taast_ray.loop.ingest import ingest_labels
    from taast_ray.loop.production import AwaitingAnnotation

    base, _ = baseline
    run = tmp_path / "run"
    shutil.copytree(base, run)
    for name in ("annotate", "dataset", "train", "evaluate"):
        (run / "cycle_1" / "_markers" / f"{name}.done").unlink()
    (run / "cycle_1" / "labels_new.json").unlink()
    (run / "_markers" / "test.done").unlink()
    cfg = load_config(None, {**SETTINGS, "protocol": {**SETTINGS["protocol"], "simulate": False}})
    with pytest.raises(AwaitingAnnotation, match="taast ingest"):
        run_cycles(cfg, run, resume=True)
    selected = pq.read_table(run / "cycle_1" / "select" / "selection.parquet").column("image_id").to_pylist()
    train = run / "synthetic" / "annotations" / "train.json"
    wrong = tmp_path / "wrong.json"
    l0_ids = [i["id"] for i in json.loads((run / "data" / "labels_L0.json").read_text())["images"]]
    wrong.write_text(json.dumps(oracle_labels(train, l0_ids[:1])))
    with pytest.raises(InputError, match="was not selected"):
        ingest_labels(run, wrong)
    good = tmp_path / "annotated.json"
    good.write_text(json.dumps(oracle_labels(train, selected)))
    ingest_labels(run, good)
    rows = run_cycles(cfg, run, resume=True)
    assert rows[-1]["labelled_images"] == len(json.loads((base / "cycle_1" / "labels.json").read_text())["images"])
    assert json.loads((run / "cycle_1" / "labels.json").read_text())["images"] == \
        json.loads((base / "cycle_1" / "labels.json").read_text())["images"]


def test_cycles_record_l0_groups_tail_lift_and_coverage(baseline):
    run, rows = baseline
    for t in (0, 1):
        metrics = json.loads((run / f"cycle_{t}" / "metrics.json").read_text())
        assert "APr@L0" in metrics and set(metrics["l0_frequency"].values()) <= {"r", "c", "f"}
    tail = json.loads((run / "cycle_1" / "tail.json").read_text())
    assert tail["selected"] == 6
    # measuring the tail leaves the published selection set whole (its manifest still verifies)
    from taast_ray.io import check_output_set

    check_output_set(run / "cycle_1" / "select")
    if tail["rare_images_random"] > 0:
        assert rows[1]["tail_lift"] == pytest.approx(tail["rare_images_selected"] / tail["rare_images_random"])
    coverage = json.loads((run / "cycle_1" / "coverage.json").read_text())
    assert coverage["over"] == "object-bearing images" and rows[1]["box_coverage"] == coverage["share"]


def test_a_degenerate_start_model_is_loud_before_selecting(baseline, tmp_path, capsys):
    from dataclasses import replace

    from taast_ray.loop.select import check_coverage

    run, _ = baseline
    cfg = load_config(None, SETTINGS)
    # a threshold no box passes stands in for a start model that finds nothing
    cfg = replace(cfg, selection=replace(cfg.selection, det_conf=0.999),
                  model=replace(cfg.model, weights=str(run / "cycle_0" / "weights.pt"), imgsz=64))
    check_coverage(cfg, tmp_path, run / "cycle_1" / "pool.parquet", run / "data" / "labels_L0.json",
                   run / "synthetic" / "annotations" / "train.json")
    coverage = json.loads((tmp_path / "coverage.json").read_text())
    assert coverage["with_boxes"] == 0 and coverage["warning"].startswith("WARNING")
    assert "found boxes on only 0 of" in capsys.readouterr().err
