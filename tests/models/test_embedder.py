"""Embedder: unit rows, determinism, open_clip's own preprocess agrees, local weights load."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from taast_ray.embedder_names import cache_key
from taast_ray.errors import ConfigError
from taast_ray.models.embedder import TINY_MODEL, Embedder, clip_preprocess, embedding_dim
from taast_ray.models.letterbox import as_image_tensors

DIM = 32  # taast-tiny-ViT.json embed_dim


@pytest.fixture(scope="module")
def tiny():
    return Embedder(TINY_MODEL, "none", device="cpu")


def _images():
    """Smooth scenes of several sizes and aspect ratios (down- and up-sampling), plus noise."""
    out = []
    for h, w in [(120, 180), (64, 64), (300, 200), (40, 50), (97, 131)]:
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        im = np.stack([np.sin(7 * xx), np.cos(5 * yy), np.sin(3 * (xx + yy))], -1) * 100 + 128
        im[h // 4: h // 2, w // 3: w // 2] = [250, 30, 60]  # a hard-edged object
        out.append(im.clip(0, 255).astype(np.uint8))
    out.append(np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8))
    return out


def test_rows_are_unit_norm_and_deterministic(tiny):
    z = tiny.embed(_images())
    assert z.shape == (6, DIM) and z.dtype == np.float32 and tiny.dim == DIM
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(z, tiny.embed(_images()))
    # random init is seeded: a second process or actor builds the same tower
    np.testing.assert_array_equal(z, Embedder(TINY_MODEL, "none", device="cpu").embed(_images()))
    # a batch mixes sizes; each row must not depend on its neighbours
    np.testing.assert_allclose(z[2:3], tiny.embed(_images()[2:3]), atol=1e-5)
    assert tiny.embed([]).shape == (0, DIM)
    assert cache_key(TINY_MODEL, "none") == f"{TINY_MODEL}|none" and tiny.model_name == TINY_MODEL


def test_matches_open_clip_preprocess(tiny):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=None)
    model.visual.load_state_dict(tiny.visual.state_dict())
    model.eval()
    with torch.no_grad():
        ref = model.encode_image(torch.stack([preprocess(Image.fromarray(im)) for im in _images()]),
                                 normalize=True).numpy()
    cos = (tiny.embed(_images()) * ref).sum(1)
    assert cos.min() > 0.99, cos


def test_preprocess_pixels_match_pil_within_one_level(tiny):
    import open_clip

    _, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=None)
    ours = clip_preprocess(as_image_tensors(_images(), torch.device("cpu")), **tiny._pp)
    ref = torch.stack([preprocess(Image.fromarray(im)) for im in _images()])
    assert ours.shape == ref.shape
    levels = (ours - ref).abs() * torch.tensor(tiny._pp["std"]).view(1, 3, 1, 1) * 255
    assert levels.max() <= 1.001 and levels.mean() < 0.05  # uint8 rounding only


def test_local_weights_file_loads(tmp_path, tiny):
    import open_clip

    torch.manual_seed(123)
    model = open_clip.create_model(TINY_MODEL, pretrained=None).eval()
    path = tmp_path / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    loaded = Embedder(TINY_MODEL, str(path), device="cpu")
    assert cache_key(TINY_MODEL, str(path)) == f"{TINY_MODEL}|{path}"  # the run's embedding cache
    x = clip_preprocess(as_image_tensors(_images(), torch.device("cpu")), **loaded._pp)
    with torch.no_grad():
        expected = F.normalize(model.encode_image(x), dim=-1).numpy()
    z = loaded.embed(_images())
    np.testing.assert_allclose(z, expected, atol=1e-6)
    assert np.abs(z - tiny.embed(_images())).max() > 0.1  # really the file's weights


def test_image_size_override_and_dims():
    small = Embedder(TINY_MODEL, "none", device="cpu", image_size=32)
    assert small.image_size == 32
    assert small.embed(_images()[:2]).shape == (2, DIM)
    # the production tower's size, read from its config without building ViT-L/14
    assert embedding_dim("ViT-L-14-quickgelu") == 768


@pytest.mark.parametrize("args, kwargs, field", [
    ((TINY_MODEL, "no-such-tag"), {}, "model.embedder_weights"),
    ((TINY_MODEL, "/nonexistent/dir/clip.pt"), {}, "model.embedder_weights"),
    (("No-Such-Arch", "none"), {}, "model.embedder"),
    ((TINY_MODEL, "none"), {"precision": "int3"}, "model.embedder_precision"),
])
def test_bad_configuration_is_a_config_error(args, kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        Embedder(*args, device="cpu", **kwargs)


def test_failed_download_is_a_config_error(monkeypatch):
    import open_clip.factory

    def offline(*a, **k):
        raise RuntimeError("Failed to download weights for tag 'openai': host unreachable")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(ConfigError, match="^model.embedder_weights: cannot load 'openai'"):
        Embedder("RN50", "openai", device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_close_to_cpu(tiny):
    gpu = Embedder(TINY_MODEL, "none", device="cuda")  # precision auto: bf16 autocast
    z = gpu.embed(_images())
    assert z.dtype == np.float32 and z.shape == (6, DIM)
    assert (z * tiny.embed(_images())).sum(1).min() > 0.99


def test_every_configurable_precision_has_a_dtype():
    from taast_ray.embedder_names import PRECISIONS
    from taast_ray.models.tower import DTYPES

    assert set(DTYPES) == set(PRECISIONS)


def test_the_embedding_cache_is_keyed_by_a_precision_other_than_the_default():
    assert cache_key(TINY_MODEL, "none", "auto") == cache_key(TINY_MODEL, "none") == f"{TINY_MODEL}|none"
    assert cache_key(TINY_MODEL, "none", "fp16") == f"{TINY_MODEL}|none|fp16"
