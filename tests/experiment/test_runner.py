"""``taast experiment`` end to end on real Ray, Ultralytics, open_clip, FAISS, lvis and pycocotools.

Tiny data (YOLOv8n from a YAML at 96 px, a tiny random-weight CLIP) so that the point is the
harness: trials as Ray tasks two at a time, one split and warm-up shared per seed, the report,
and a resume that redoes only what is missing.
"""
import json

import pytest
import yaml

from taast_ray.experiment.config import experiment_from_dict
from taast_ray.experiment.runner import plan, run_experiment

TINY = {
    "name": "tiny",
    "base": {
        "data": {"synthetic_images": 150, "synthetic_classes": 4, "synthetic_image_size": 96},
        "selection": {"budget": 8},
        "model": {"weights": "yolov8n.yaml", "embedder": "taast-tiny-ViT", "embedder_weights": "none"},
        "train": {"imgsz": 96, "batch": 8, "workers": 1, "warmup_epochs": 1, "epochs": 1,
                  "optimizer": "AdamW", "lr0": 0.002},
        "protocol": {"cycles": 1, "seed_fraction": 0.2},
        "ray": {"detector_actors_min": 1, "detector_actors_max": 1, "embedder_actors_max": 1,
                "batch_size": 16},
    },
    "seeds": [5],
    "strategies": ["random", "taast"],
    "parallel_trials": 2,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, ray_local):
    out = tmp_path_factory.mktemp("experiment")
    exp = experiment_from_dict(TINY)
    return exp, out, run_experiment(exp, out, progress_interval=5)


def test_every_trial_reported(finished):
    exp, out, results = finished
    assert {(t["strategy"], t["seed"]) for t in results["trials"]} == {("random", 5), ("taast", 5)}
    for t in results["trials"]:
        assert [r["cycle"] for r in t["rows"]] == [0, 1]
        assert t["rows"][1]["labelled_images"] == t["rows"][0]["labelled_images"] + 8
        assert sum(t["selected_objects"].values()) == t["rows"][1]["manual_annotations"] - t["rows"][0]["manual_annotations"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"]["default"].keys() == {"random", "taast"}
    report = (out / "report.md").read_text()
    assert "| strategy | pseudo labels | AP_rare start | AP_rare final (t-interval) |" in report
    assert "Paired differences of the final values" in report and "| taast − random |" in report
    assert "taast − random, final AP_rare" in report
    for name in ("curves_default.png", "selected_classes_default.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    assert "versions" in yaml.safe_load((out / "experiment.yaml").read_text())


def test_strategies_of_a_seed_share_split_and_warm_up(finished):
    exp, out, results = finished
    trials = plan(exp, out)
    base = trials[0].base
    for t in trials:
        for f in ("data/labels_L0.json", "data/pool.parquet", "cycle_0/weights.pt", "cycle_0/metrics.json"):
            assert (t.directory / f).read_bytes() == (base / f).read_bytes()
    rows = {t["strategy"]: t["rows"] for t in results["trials"]}
    assert rows["random"][0] == rows["taast"][0]


def test_baselines_train_without_pseudo_labels(finished):
    exp, out, results = finished
    by = {t["strategy"]: t for t in results["trials"]}
    assert by["random"]["pseudo_labels"] is False and by["random"]["rows"][1]["pseudo_annotations"] == 0
    assert by["taast"]["pseudo_labels"] is True
    cfg = yaml.safe_load((out / "trials/default/random/seed_5/config.yaml").read_text())
    assert (cfg["selection"]["strategy"], cfg["protocol"]["pseudo_labels"]) == ("random", False)


def test_resume_redoes_only_what_is_missing(finished):
    exp, out, results = finished
    trial = out / "trials/default/taast/seed_5"
    weights = (trial / "cycle_1/weights.pt").stat().st_mtime_ns
    (trial / "_markers/trial.done").unlink()
    (trial / "cycle_1/_markers/evaluate.done").unlink()
    (trial / "cycle_1/metrics.json").unlink()
    again = run_experiment(exp, out, resume=True, progress_interval=5)
    assert (trial / "cycle_1/weights.pt").stat().st_mtime_ns == weights  # training was not redone
    assert json.dumps(again["summary"], sort_keys=True) == json.dumps(results["summary"], sort_keys=True)


def test_a_non_empty_directory_needs_resume(finished):
    from taast_ray.errors import InputError

    exp, out, _ = finished
    with pytest.raises(InputError, match="--resume"):
        run_experiment(exp, out)


def test_the_cli_lock_alone_does_not_make_a_directory_used(tmp_path):
    """`taast experiment` takes OUT/.taast.lock before run_experiment looks at OUT: a new
    directory holding only that lock is still new (every fresh CLI experiment failed on it)."""
    from taast_ray.errors import InputError
    from taast_ray.experiment.runner import check_fresh
    from taast_ray.lock import run_lock

    out = tmp_path / "exp"
    with run_lock(out):
        assert [p.name for p in out.iterdir()] == [".taast.lock"]
        check_fresh(out, resume=False)
        (out / "experiment.yaml").write_text("name: x\n")
        with pytest.raises(InputError, match="--resume"):
            check_fresh(out, resume=False)
        check_fresh(out, resume=True)
