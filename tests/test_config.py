"""The typed configuration: paper defaults, YAML, overrides, one-line errors naming the field."""
import pytest
import yaml

from taast_ray.config import TaastConfig, load_config, save_config
from taast_ray.errors import ConfigError


def test_defaults_follow_the_paper():
    cfg = TaastConfig().validate()
    assert cfg.selection.budget == 256 and cfg.selection.tau == 0.8
    assert cfg.selection.candidate_fraction == 0.2 and cfg.selection.beta == 1.0
    assert cfg.protocol.cycles == 3 and cfg.protocol.seeds == [21, 42, 63]
    assert cfg.protocol.seed_fraction == 0.1
    assert cfg.train.epochs == 30 and cfg.train.momentum == 0.937 and cfg.train.weight_decay == 5e-4
    assert cfg.train.lr0 == 0.01 and cfg.train.lr0 * cfg.train.lrf == pytest.approx(0.001)
    assert cfg.model.embedder == "ViT-L-14-quickgelu"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("selection:\n  budget: 64\n  strategy: entropy\nprotocol:\n  seeds: [1, 2]\n")
    cfg = load_config(path, ["selection.budget=32", "train.epochs=2"])
    assert cfg.selection.budget == 32 and cfg.selection.strategy == "entropy"
    assert cfg.protocol.seeds == [1, 2] and cfg.train.epochs == 2


@pytest.mark.parametrize("override, field", [
    ("selection.budget=0", "selection.budget"),
    ("selection.strategy=magic", "selection.strategy"),
    ("selection.tau=1.5", "selection.tau"),
    ("selection.budget=abc", "selection.budget"),
    ("selection.nonsense=1", "selection.nonsense"),
    ("model.imgsz=100", "model.imgsz"),
    ("ray.detector_actors_min=5", "ray.detector_actors_min"),
    ("ray.decode=gpu", "ray.decode"),
    ("ray.decode_cpus=0", "ray.decode_cpus"),
    ("train.cpus_per_worker=0", "train.cpus_per_worker"),
    ("selection.kmeans_iters=1099511627776", "selection.kmeans_iters"),  # FAISS: a C int
    ("selection.kmeans_max_points_per_centroid=2147483648", "selection.kmeans_max_points_per_centroid"),
    ("model.imgsz=1099511627776", "model.imgsz"),
    ("train.imgsz=8224", "train.imgsz"),
])
def test_bad_field_is_named(override, field):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    message = str(err.value)
    assert message.startswith(field) and "\n" not in message


@pytest.mark.parametrize("name", ["taast-maxrare", "taast-expected-balanced"])
def test_a_retired_strategy_says_why(name):
    with pytest.raises(ConfigError, match=rf"^selection\.strategy: {name} was dropped after study \(a\)"):
        load_config(None, [f"selection.strategy={name}"])


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfselection:\n  budget: 7\n")
    assert load_config(path).selection.budget == 7


def test_unknown_section_and_bad_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("nope:\n  x: 1\n")
    with pytest.raises(ConfigError, match="^nope: unknown field"):
        load_config(path)
    path.write_text("selection: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_saved_config_records_versions_and_round_trips(tmp_path):
    cfg = load_config(None, ["selection.budget=7"])
    save_config(cfg, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "numpy" in saved["versions"] and "ray" in saved["versions"]
    assert load_config(tmp_path / "config.yaml").to_dict() == cfg.to_dict()
