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


@pytest.mark.parametrize("name, weights", [("taast-tiny-ViT", "none"), ("mobilenetv2-imagenet", "imagenet")])
def test_good_embedders_build_nothing(name, weights):
    check_embedder(name, weights)


def _cache_hf_weights(cache, repo: str, filename: str = "open_clip_pytorch_model.bin") -> None:
    """Hugging Face's cache layout (refs/main → a snapshot folder holding the file)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("0" * 40) / filename).write_bytes(b"weights")


def test_a_pretrained_tag_resolves_from_the_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        check_embedder("ViT-L-14-quickgelu", "openai")
    _cache_hf_weights(tmp_path, "timm/vit_large_patch14_clip_224.openai")
    check_embedder("ViT-L-14-quickgelu", "openai")


def test_an_unreachable_hub_is_one_line_naming_the_field(tmp_path, monkeypatch):
    """Issue 16: the default ViT-L/14 offline fails on the driver in seconds, not in every actor."""
    from huggingface_hub import constants

    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.taast.invalid")  # .invalid never resolves
    with pytest.raises(ConfigError) as err:
        check_embedder("ViT-L-14-quickgelu", "openai")
    message = str(err.value)
    assert message.startswith("model.embedder_weights: the 'openai' weights of ViT-L-14-quickgelu are not "
                              "in the local cache and hub.taast.invalid cannot be reached")
    assert "--preset cpu" in message and "\n" not in message
