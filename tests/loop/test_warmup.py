"""Production warm-up: the team's own .pt with L's classes starts the cycles as it is; a model
YAML or a .pt with other classes is trained on L first (train.warmup_epochs > 0)."""
import pytest
import torch

from taast_ray.config import config_from_dict
from taast_ray.errors import ConfigError
from taast_ray.loop.production import own_image_id, start_weights


def detector_pt(path, classes: int):
    """A .pt as Ultralytics saves one: {"model": DetectionModel} (random weights, saved here)."""
    from ultralytics.nn.tasks import DetectionModel

    torch.save({"model": DetectionModel("yolov8n.yaml", nc=classes, verbose=False).half()}, path)
    return str(path)


def cfg(weights, warmup=1):
    return config_from_dict({"model": {"weights": weights}, "train": {"warmup_epochs": warmup}})


def test_own_weights_with_ls_classes_skip_the_warm_up(tmp_path):
    own = detector_pt(tmp_path / "own.pt", 3)
    assert start_weights(cfg(own, warmup=0), 3) is False
    assert start_weights(cfg(own), 5) is True  # other classes: fitted to L's first
    with pytest.raises(ConfigError, match="train.warmup_epochs: .* has 3 classes, L has 5"):
        start_weights(cfg(own, warmup=0), 5)


def test_a_model_yaml_needs_a_warm_up():
    assert start_weights(cfg("yolov8n.yaml"), 3) is True
    with pytest.raises(ConfigError, match="train.warmup_epochs: yolov8n.yaml starts from random weights"):
        start_weights(cfg("yolov8n.yaml", warmup=0), 3)


def test_image_ids_are_paths_relative_to_the_images_root(tmp_path):
    assert own_image_id("a/./b.jpg", tmp_path) == "a/b.jpg"
    assert own_image_id(str(tmp_path / "x" / "c.png"), tmp_path) == "x/c.png"
    assert own_image_id("/elsewhere/d.jpg", tmp_path) == "/elsewhere/d.jpg"
