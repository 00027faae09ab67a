"""The synthetic set's second family, ``textures``: colour carries no class information, objects
at several scales and overlapping, deterministic; the default ``shapes`` family unchanged."""
import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import taast_ray  # noqa: F401
from taast_ray.cli import main
from taast_ray.config import SYNTHETIC_FAMILIES, load_config
from taast_ray.data.synth_layout import overlap
from taast_ray.data.synth import FAMILIES, _render, class_names, make_synthetic_dataset
from taast_ray.errors import ConfigError
from tests.data.test_synth import _tree_hash

CLASSES = 6  # shapes: six distinct colours, so there colour alone names the class


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Both families, same seed and plan; a flat prior so every class has objects to average."""
    root = tmp_path_factory.mktemp("families")
    return {f: (root / f, make_synthetic_dataset(root / f, images=400, classes=CLASSES, zipf=0.0,
                                                 image_size=96, seed=0, family=f))
            for f in FAMILIES}


def _load(out, split):
    return json.loads((out / "annotations" / f"{split}.json").read_text())


def _mean_colours(out, splits):
    """Mean RGB of each object's box centre (the middle half of each side), and its class."""
    colours, labels = [], []
    for split in splits:
        doc = _load(out, split)
        files = {im["id"]: im["file_name"] for im in doc["images"]}
        pixels = {}
        for a in doc["annotations"]:
            image = pixels.setdefault(a["image_id"], np.asarray(
                Image.open(out / "images" / files[a["image_id"]]), dtype=np.float32))
            x, y, w, h = a["bbox"]
            centre = image[y + h // 4: y + h - h // 4, x + w // 4: x + w - w // 4]
            colours.append(centre.reshape(-1, 3).mean(0))
            labels.append(a["category_id"] - 1)
    return np.array(colours), np.array(labels)


def _nearest_mean_accuracy(out) -> float:
    """Class means of the centre colour fitted on train, accuracy on val + test."""
    train_x, train_y = _mean_colours(out, ["train"])
    test_x, test_y = _mean_colours(out, ["val", "test"])
    means = np.stack([train_x[train_y == k].mean(0) for k in range(CLASSES)])
    predicted = np.argmin(((test_x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    return float(np.mean(predicted == test_y))


def test_colour_does_not_tell_texture_classes_apart(sets):
    chance = 1 / CLASSES
    assert _nearest_mean_accuracy(sets["shapes"][0]) > 0.8
    assert _nearest_mean_accuracy(sets["textures"][0]) < 2 * chance


def test_objects_at_several_scales_and_overlapping(sets):
    out, stats = sets["textures"]
    anns = [a for s in ("train", "val", "test") for a in _load(out, s)["annotations"]]
    side = np.array([np.sqrt(a["bbox"][2] * a["bbox"][3]) / 96 for a in anns])
    assert side.min() < 0.1 and side.max() > 0.45
    assert np.mean(side < 0.12) > 0.1 and np.mean(side > 0.4) > 0.05
    # overlaps beyond the shapes family's 0.35 of the smaller box
    hidden = []
    for split in ("train", "val", "test"):
        by_image = {}
        for a in _load(out, split)["annotations"]:
            x, y, w, h = a["bbox"]
            by_image.setdefault(a["image_id"], []).append((x, y, x + w, y + h))
        for boxes in by_image.values():
            hidden += [overlap(a, b) for i, a in enumerate(boxes)
                       for b in boxes[i + 1:]]
    assert max(hidden) > 0.35
    assert stats["family"] == "textures" and stats["names"] == class_names(CLASSES, "textures")
    assert _load(out, "val")["info"]["family"] == "textures"
    assert stats["sizes"] == sets["shapes"][1]["sizes"]  # same plan: only the drawing differs
    assert stats["instances"] == sets["shapes"][1]["instances"]


def test_texture_class_names_distinct_and_stable():
    names = class_names(48, "textures")
    assert len(set(names)) == 48 and names[:4] == ["stripe_square", "dots_circle",
                                                   "check_triangle", "rings_hexagon"]
    assert all(len(n) < 16 and n.count("_") == 1 for n in names)  # fits the class table
    for a, b in zip(names, names[1:]):  # neighbours differ in texture and in outline
        assert a.split("_")[0] != b.split("_")[0] and a.split("_")[1] != b.split("_")[1]
    assert class_names(10, "textures") == names[:10]
    assert class_names(12) == class_names(12, "shapes") != class_names(12, "textures")


# Recorded with the code from before families existed (numpy 2.4.6, Pillow 13.0.0): the shapes
# family's random draws and drawing are unchanged. The annotations hold only numpy's draws; the
# render hash also Pillow's drawing (raw pixels, not JPEG bytes). Should a numpy or Pillow upgrade
# move them, check the shapes images by eye before re-recording.
SHAPES_ANNOTATIONS_MD5 = {"train": "3a602b0ef65bf4cf7a2308c53f261f85",
                          "val": "c8f008cc3db4714cd707c0bbe474c943",
                          "test": "913f1256d2e48ac9f219cf6fa87d593b"}
SHAPES_RENDER_MD5 = "5fa59bc746446ce601fa62c741109c0b"


def test_shapes_default_unchanged(tmp_path):
    out = tmp_path / "set"
    stats = make_synthetic_dataset(out, images=40, image_size=64, seed=5, eval_min_instances=3)
    for split, md5 in SHAPES_ANNOTATIONS_MD5.items():
        assert hashlib.md5((out / "annotations" / f"{split}.json").read_bytes()).hexdigest() == md5
    assert stats["family"] == "shapes" and "family" not in _load(out, "train")["info"]
    default = _tree_hash(out)
    shutil.rmtree(out)
    make_synthetic_dataset(out, images=40, image_size=64, seed=5, eval_min_instances=3,
                           family="shapes")
    assert _tree_hash(out) == default

    rng, names, digest = np.random.default_rng(7), class_names(12), hashlib.md5()
    for k in range(5):
        image, boxes = _render(rng, 64, np.array([k, 11, 3][:1 + k % 3]), names)
        digest.update(np.asarray(image).tobytes())
        digest.update(repr(boxes).encode())
    assert digest.hexdigest() == SHAPES_RENDER_MD5


def test_bad_family_is_one_line_naming_the_flag(tmp_path):
    with pytest.raises(ConfigError) as err:
        make_synthetic_dataset(tmp_path / "x", images=20, family="plaid")
    assert str(err.value).startswith("--family: must be one of shapes, textures")
    assert "\n" not in str(err.value) and not (tmp_path / "x").exists()


def test_config_field_and_cli_flag(tmp_path, capsys):
    assert SYNTHETIC_FAMILIES == FAMILIES  # config sits below data, so it repeats the names
    assert load_config(None, []).data.synthetic_family == "shapes"
    assert load_config(None, ["data.synthetic_family=textures"]).data.synthetic_family == "textures"
    with pytest.raises(ConfigError) as err:
        load_config(None, ["data.synthetic_family=plaid"])
    assert str(err.value).startswith("data.synthetic_family: must be one of shapes, textures")
    assert "\n" not in str(err.value)
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--images", "12", "--classes", "3", "--image-size",
                 "48", "--eval-min-instances", "0", "--family", "textures"]) == 0
    assert json.loads((out / "stats.json").read_text())["family"] == "textures"
    assert "stripe_square" in capsys.readouterr().out
