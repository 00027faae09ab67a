"""`taast run` fails before work and leaves nothing behind (issue 16 item 4): one line naming the
field, exit != 0, the run directory untouched; a failed first start can be retried as it was."""
import json
from pathlib import Path

import pytest

from taast_ray.cli import main
from taast_ray.errors import InputError
from taast_ray.loop.preflight import check_run_directory, undo_failed_first_start
from tests.factories import one_line, write_labels

TINY = ["--set", "model.weights=yolov8n.yaml", "--set", "model.embedder=taast-tiny-ViT",
        "--set", "model.embedder_weights=none", "--set", "train.imgsz=64"]



def _yolov8s_on_this_machine() -> bool:
    from ultralytics.utils import SETTINGS

    return Path("yolov8s.pt").exists() or (Path(SETTINGS["weights_dir"]) / "yolov8s.pt").exists()


@pytest.mark.skipif(_yolov8s_on_this_machine(), reason="yolov8s.pt is cached here: the default resolves")
@pytest.mark.parametrize("command", ["run", "select"])
def test_offline_default_detector_is_one_line_and_writes_nothing(tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = ["run", "--out", str(out)] if command == "run" else [
        "select", "--pool", str(tmp_path), "--labels", str(write_labels(tmp_path / "l.json", [3, 2])),
        "--budget", "1", "--out", str(out)]
    if command == "select":
        (tmp_path / "a.jpg").write_bytes(b"not decoded before the check")
    assert main(argv) == 2
    line = one_line(capsys)
    assert line.startswith("taast: error: model.weights: 'yolov8s.pt' is not on this machine"), line
    assert not out.exists()


def test_offline_default_embedder_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """The default ViT-L/14 with its hub tag, the hub unreachable (``.invalid`` never resolves)."""
    from huggingface_hub import constants

    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.taast.invalid")
    out = tmp_path / "run"
    out.mkdir()  # an empty folder the user made: still there, still empty
    assert main(["run", "--out", str(out), "--set", "model.weights=yolov8n.yaml"]) == 2
    assert one_line(capsys).startswith("taast: error: model.embedder_weights: the 'openai' weights of "
                                       "ViT-L-14-quickgelu are not in the local cache")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ("names: {0: car}\npath: .\n", "not valid JSON"),
    ('{"images": []}', "missing the 'categories' list"),
])
def test_invalid_labels_are_one_line_naming_the_field(tmp_path, capsys, text, message):
    (tmp_path / "images").mkdir()
    (tmp_path / "data.yaml").write_text(text)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--set", f"data.train={tmp_path / 'data.yaml'}",
                 "--set", f"data.val={tmp_path / 'data.yaml'}", "--set", f"data.images={tmp_path / 'images'}",
                 *TINY]) == 2
    line = one_line(capsys)
    assert line.startswith(f"taast: error: data.train: {tmp_path / 'data.yaml'}: {message}"), line
    assert not out.exists()


def test_a_missing_images_folder_names_data_images(tmp_path, capsys):
    labels = write_labels(tmp_path / "train.json", [4, 2])
    assert main(["run", "--out", str(tmp_path / "run"), "--set", f"data.train={labels}",
                 "--set", f"data.val={labels}", "--set", f"data.images={tmp_path / 'nope'}", *TINY]) == 2
    assert one_line(capsys).startswith("taast: error: data.images:")


def test_a_failed_first_start_leaves_the_directory_as_it_was_and_can_be_retried(tmp_path, capsys, ray_local):
    """A real failure after files were written (config.yaml, data/): an image file missing when
    the warm-up's training set is assembled. The same command again fails the same way, not
    with "run directory is not empty"."""
    write_labels(tmp_path / "train.json", [12, 5, 3])
    write_labels(tmp_path / "val.json", [4, 3, 2])
    (tmp_path / "images").mkdir()
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--set", f"data.train={tmp_path / 'train.json'}",
            "--set", f"data.val={tmp_path / 'val.json'}", "--set", f"data.images={tmp_path / 'images'}",
            "--set", "train.warmup_epochs=1", *TINY]
    for attempt in range(2):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "image file not found" in err and "not empty" not in err, err
        assert "nothing of this start kept; the same command can be run again" in err
        assert not out.exists()


def test_a_start_whose_cycle_stage_finished_keeps_its_files(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError), undo_failed_first_start(run, resume=False):
        (run / "cycle_0" / "_markers").mkdir(parents=True)
        (run / "cycle_0" / "_markers" / "train.done").write_text(json.dumps({}))
        (run / "config.yaml").write_text("x: 1\n")
        raise RuntimeError("lost the node")
    assert (run / "config.yaml").exists()
    with pytest.raises(InputError, match="not empty"):
        check_run_directory(run, resume=False)
    check_run_directory(run, resume=True)


def test_an_interrupted_first_start_is_undone_too(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".taast.lock").write_text("{}")  # the lock's own file is the lock's to remove
    with pytest.raises(KeyboardInterrupt), undo_failed_first_start(run, resume=False):
        (run / "config.yaml").write_text("x: 1\n")
        (run / "detections").mkdir()
        raise KeyboardInterrupt
    assert [p.name for p in run.iterdir()] == [".taast.lock"]


def test_a_file_as_run_directory(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(Exception, match="--out: .* is a file"):
        check_run_directory(tmp_path / "f", resume=False)


def test_experiment_checks_its_models_before_work(tmp_path, capsys):
    (tmp_path / "e.yaml").write_text("name: t\nbase: {model: {weights: nosuch.yaml}}\nseeds: [1]\n"
                                     "strategies: [random]\n")
    out = tmp_path / "exp"
    assert main(["experiment", "--config", str(tmp_path / "e.yaml"), "--out", str(out)]) == 2
    assert one_line(capsys).startswith("taast: error: model.weights: cannot build 'nosuch.yaml'")
    assert not out.exists()


def _production(tmp_path, weights, warmup: int, classes: int = 10):
    from taast_ray.config import config_from_dict

    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "pool").mkdir(exist_ok=True)
    labelled = write_labels(tmp_path / "L.json", [3] * classes)
    return config_from_dict({"data": {"labelled": str(labelled), "pool": str(tmp_path / "pool"),
                                      "images": str(tmp_path / "images")},
                             "model": {"weights": weights}, "train": {"warmup_epochs": warmup}})


@pytest.mark.parametrize("pt_classes, warmup, refused", [(10, 0, None), (7, 3, None),
                                                         (7, 0, "has 7 classes, the labelled set has 10")])
def test_a_teams_own_detector_of_any_class_count_is_taken(tmp_path, pt_classes, warmup, refused):
    """The production run's classes are L's (data.labelled), not the synthetic setting's 12: a
    10-class .pt starts the cycles as it is, another count is fitted by a warm-up."""
    from taast_ray.errors import ConfigError
    from taast_ray.loop.preflight import check_data_files, check_start_model
    from tests.loop.test_warmup import detector_pt

    cfg = _production(tmp_path, detector_pt(tmp_path / "own.pt", pt_classes), warmup)
    assert check_data_files(cfg) == 10
    if refused is None:
        check_start_model(cfg, 10)
    else:
        with pytest.raises(ConfigError, match=f"^train.warmup_epochs: .*{refused}"):
            check_start_model(cfg, 10)


def test_a_yolo_import_counts_the_classes_its_data_yaml_names(tmp_path):
    from taast_ray.config import config_from_dict
    from taast_ray.loop.preflight import check_data_files

    (tmp_path / "data.yaml").write_text("path: .\ntrain: images\nnames: [a, b, c, d, e, f, g, h, i, j, k]\n")
    assert check_data_files(config_from_dict({"data": {"yolo": str(tmp_path / "data.yaml")}})) == 11
