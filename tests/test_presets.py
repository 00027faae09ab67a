"""`--preset cpu` for select, run and experiment (issue 16 item 7): the tiny offline models and
sizes, under the configuration file, --set and the flags."""
import pytest

from taast_ray.cli import build_config, make_parser, parse_args
from taast_ray.config import ConfigError, preset_settings
from taast_ray.experiment.config import load_experiment


def test_select_gets_the_tiny_models_at_the_preset_size():
    cfg = build_config(parse_args(["select", "--pool", "p", "--labels", "l", "--out", "o", "--preset", "cpu"]))
    assert (cfg.model.weights, cfg.model.embedder, cfg.model.embedder_weights) == \
        ("yolov8n.yaml", "mobilenetv2-imagenet", "imagenet")
    assert cfg.model.imgsz == 320 and cfg.ray.use_gpu == "false"


def test_flags_set_and_the_file_override_the_preset(tmp_path):
    (tmp_path / "c.yaml").write_text("train: {epochs: 3}\nmodel: {embedder: taast-tiny-ViT, embedder_weights: none}\n")
    cfg = build_config(parse_args(["run", "--out", "o", "--preset", "cpu", "--config", str(tmp_path / "c.yaml"),
                                   "--set", "train.imgsz=160"]))
    assert cfg.train.epochs == 3 and cfg.train.imgsz == 160 and cfg.model.embedder == "taast-tiny-ViT"
    assert cfg.model.imgsz is None  # a run scores at train.imgsz (validate_for_run)
    cfg.validate_for_run()
    cfg = build_config(parse_args(["select", "--pool", "p", "--labels", "l", "--out", "o", "--preset", "cpu",
                                   "--weights", "mine.pt", "--imgsz", "640"]))
    assert cfg.model.weights == "mine.pt" and cfg.model.imgsz == 640


def test_experiment_base_takes_the_preset_under_its_own_base(tmp_path):
    (tmp_path / "e.yaml").write_text("name: t\nbase: {train: {epochs: 2}}\nseeds: [1]\nstrategies: [random]\n")
    exp = load_experiment(tmp_path / "e.yaml", ["base.train.batch=4"], base=preset_settings("cpu", "experiment"))
    assert exp.base.model.weights == "yolov8n.yaml" and exp.base.train.epochs == 2 and exp.base.train.batch == 4


@pytest.mark.parametrize("command", ["select", "run", "experiment"])
def test_help_names_the_preset(command):
    sub = make_parser(command)._subparsers._group_actions[0].choices[command]
    assert "--preset {cpu}" in sub.format_help() and "laptop CPU" in sub.format_help()


def test_an_unknown_preset_is_refused():
    with pytest.raises(ConfigError, match="--preset: must be one of cpu"):
        preset_settings("gpu")
    with pytest.raises(SystemExit):
        parse_args(["run", "--out", "o", "--preset", "gpu"])
