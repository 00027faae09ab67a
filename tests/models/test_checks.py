"""checks.py: detector and embedder problems found on the driver, as one-line ConfigErrors."""
import pytest

from taast_ray.errors import ConfigError
from taast_ray.models.checks import check_detector, check_embedder


@pytest.mark.parametrize("weights, message", [
    ("CORRUPT", "model.weights: cannot load"),
    ("/no/such/w.pt", "model.weights: file not found: /no/such/w.pt"),
    ("yolov99.pt", "neither a local file nor a model name Ultralytics knows"),
    ("nosuch.yaml", "model.weights: cannot build 'nosuch.yaml'"),
])
def test_bad_detector_weights(tmp_path, weights, message):
    if weights == "CORRUPT":
        weights = str(tmp_path / "corrupt.pt")
        (tmp_path / "corrupt.pt").write_bytes(b"\x80\x04 truncated pickle")
    with pytest.raises(ConfigError, match=message) as err:
        check_detector(weights, 3)
    assert "\n" not in str(err.value)


def test_a_good_detector_passes():
    check_detector("yolov8n.yaml", 3)  # builds (random init) and is dropped again


@pytest.mark.parametrize("name, weights, message", [
    ("NoSuchCLIP", "none", "model.embedder: unknown open_clip architecture 'NoSuchCLIP'"),
    ("ViT-L-14-quickgelu", "bogus", "'bogus' is not a pretrained tag of ViT-L-14-quickgelu"),
    ("ViT-B-32", "/x/y.pt", "model.embedder_weights: file not found: /x/y.pt"),
])
def test_bad_embedders(name, weights, message):
    with pytest.raises(ConfigError, match=message):
        check_embedder(name, weights)


@pytest.mark.parametrize("name, weights", [("taast-tiny-ViT", "none"), ("ViT-L-14-quickgelu", "openai")])
def test_good_embedders_build_nothing(name, weights):
    check_embedder(name, weights)
