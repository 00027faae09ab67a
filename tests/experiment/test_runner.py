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
from tests.sockets import assert_loopback_only, watch_listeners

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


LISTENERS: dict[str, str] = {}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, ray_local):
    out = tmp_path_factory.mktemp("experiment")
    exp = experiment_from_dict(TINY)
    with watch_listeners() as seen:
        results = run_experiment(exp, out, progress_interval=5)
    LISTENERS.update(seen)
    return exp, out, results


def test_an_experiment_listens_on_loopback_only(finished):
    """Issue 31: the whole experiment (warm-up and fine-tunes on Ray Train, live passes on Ray Data)
    never listened beyond the machine; Ray Train's process group met through a file, not a TCP
    store on every interface (training/trainer.loopback_torch_config)."""
    assert_loopback_only(LISTENERS, "RayTrainWo")


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


def test_a_study_run_in_parts_merges_into_the_report_of_all_its_arms(finished, tmp_path):
    """A second experiment with another arm, into its own directory, then `taast report` over both:
    the seed's warm-up is made again and is the same model, the first part's arms keep their numbers,
    and the merged report pairs the new arm with them."""
    from taast_ray.cli import main

    exp, out, results = finished
    part = experiment_from_dict({**TINY, "strategies": ["entropy"], "reference": "entropy"})
    run_experiment(part, tmp_path / "part2", progress_interval=5)
    assert main(["report", str(out), str(tmp_path / "part2"), "--out", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert list(merged["summary"]["default"]) == ["random", "entropy", "taast"]
    assert [w["same"] for w in merged["warmups"]] == [True]
    first = json.loads((out / "results.json").read_text())
    for name in ("random", "taast"):
        assert json.dumps(merged["summary"]["default"][name], sort_keys=True) == \
            json.dumps(first["summary"]["default"][name], sort_keys=True)
    entropy = merged["summary"]["default"]["entropy"]
    assert entropy["vs_reference"]["mAP"]["n"] == 1  # paired with random's seed 5, across the parts
    report = (tmp_path / "merged" / "report.md").read_text()
    assert "| entropy − random |" not in report and "| taast − entropy |" in report
    assert "same in every part" in report and f"`{tmp_path / 'part2'}`: entropy" in report
    # the merged directory is a part itself: a later session can add to it
    again = experiment_from_dict(yaml.safe_load((tmp_path / "merged" / "experiment.yaml").read_text()))
    assert [s.name for s in again.strategies] == ["random", "entropy", "taast"]


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


def test_label_shift_variants_train_once_and_are_scored_on_their_own_test_split(tmp_path, ray_local):
    """A label shift changes only the test split, so the shift levels of one empty share run one
    training per (strategy, seed); each variant's curve is that run's models on its own test split."""
    from taast_ray.io import read_json

    exp = experiment_from_dict({**TINY, "strategies": ["random"], "parallel_trials": 1, "curve_split": "test",
                                "sweep": {"empty_fraction": [0.0],
                                          "label_shift": {"none": None, "strong": "dirichlet:0.5"}}})
    results = run_experiment(exp, tmp_path, progress_interval=5)
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == ["empty00"]
    assert sorted(p.name for p in (tmp_path / "bases").iterdir()) == ["empty00"]
    run = tmp_path / "trials/empty00/random/seed_5"
    assert not (run / "test_metrics.json").exists()  # scored per variant instead
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["val"].endswith("empty00-shift_none/annotations/val.json")
    by = {t["variant"]: t for t in results["trials"]}
    none, strong = by["empty00-shift_none"], by["empty00-shift_strong"]
    assert none["selected_objects"] == strong["selected_objects"]
    assert [r["labelled_images"] for r in none["rows"]] == [r["labelled_images"] for r in strong["rows"]]
    for name, trial in by.items():
        for row in trial["rows"]:
            scored = read_json(tmp_path / "curves" / name / f"random/seed_5/cycle_{row['cycle']}.json")
            assert row["mAP"] == scored["mAP"] and row["APr@L0"] == scored.get("APr@L0")
        assert trial["test"]["mAP"] == trial["rows"][-1]["mAP"]
        # the warm-up is scored once per variant and seed, for every strategy
        assert read_json(tmp_path / "curves" / name / "_warm-up/seed_5/cycle_0.json")["mAP"] == trial["rows"][0]["mAP"]
    # the same models, scored on two different test splits
    tests = [read_json(tmp_path / "datasets" / v / "annotations/test.json")["annotations"] for v in by]
    assert tests[0] != tests[1]
    predicted = [(tmp_path / "curves" / v / "random/seed_5/cycle_1_predictions.json").read_bytes() for v in by]
    assert predicted[0] != predicted[1]
    assert set(results["summary"]) == {"empty00-shift_none", "empty00-shift_strong"}

    # --resume with one more cycle grows the finished run from its last model, and each variant's
    # curve gets the new cycle scored on its own test split
    weights = (run / "cycle_1/weights.pt").stat().st_mtime_ns
    grown = run_experiment(experiment_from_dict({**exp.to_dict(), "base": _cycles(exp, 2)}), tmp_path,
                           resume=True, progress_interval=5)
    assert (run / "cycle_1/weights.pt").stat().st_mtime_ns == weights
    for trial in grown["trials"]:
        before = by[trial["variant"]]
        assert [r["cycle"] for r in trial["rows"]] == [0, 1, 2] and trial["rows"][:2] == before["rows"]
        assert trial["rows"][2]["labelled_images"] == before["rows"][1]["labelled_images"] + 8
        assert trial["test"]["mAP"] == trial["rows"][-1]["mAP"]
        assert (tmp_path / "curves" / trial["variant"] / "random/seed_5/cycle_2.json").exists()


def _cycles(exp, cycles: int) -> dict:
    base = exp.base.to_dict()
    return {**base, "protocol": {**base["protocol"], "cycles": cycles}}


def test_resume_with_more_cycles_grows_finished_trials_and_scores_their_new_final_model(finished, tmp_path):
    import shutil

    from taast_ray.io import read_json

    exp, out, results = finished
    out2 = tmp_path / "grown"
    shutil.copytree(out, out2)
    trial = out2 / "trials/default/random/seed_5"
    weights = (trial / "cycle_1/weights.pt").stat().st_mtime_ns
    grown = run_experiment(experiment_from_dict({**exp.to_dict(), "base": _cycles(exp, 2)}), out2,
                           resume=True, progress_interval=5)
    assert (trial / "cycle_1/weights.pt").stat().st_mtime_ns == weights  # cycle 1 was not redone
    by = {t["strategy"]: t for t in results["trials"]}
    for t in grown["trials"]:
        assert [r["cycle"] for r in t["rows"]] == [0, 1, 2] and t["rows"][:2] == by[t["strategy"]]["rows"]
        done = out2 / f"trials/default/{t['strategy']}/seed_5/_markers"
        assert read_json(done / "test.done")["cycle"] == 2 and read_json(done / "trial.done")["cycles"] == 2
    assert "T = 2 cycles" in (out2 / "report.md").read_text()
