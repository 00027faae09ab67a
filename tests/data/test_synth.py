"""Synthetic data: long tail, LVIS tags, empty share, label shift, determinism, loadable JSON."""
import hashlib
import json
import shutil

import numpy as np
import pytest

import taast_ray  # noqa: F401
from taast_ray.data.frequency import lvis_tag as frequency_tag
from taast_ray.data.synth import (class_prior, format_class_table,
                                  make_synthetic_dataset, parse_label_shift)
from taast_ray.errors import ConfigError


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "default"
    # image size does not touch the class statistics; 64 px keeps the fixture quick
    return out, make_synthetic_dataset(out, images=3000, seed=0, image_size=64)


def _load(out, split):
    return json.loads((out / "annotations" / f"{split}.json").read_text())


def _object_shares(out, split, classes):
    cats = [a["category_id"] - 1 for a in _load(out, split)["annotations"]]
    return np.bincount(cats, minlength=classes) / len(cats)


def test_tags_follow_train_image_counts(default_set):
    out, stats = default_set
    train = _load(out, "train")
    images_of = {}
    for a in train["annotations"]:
        images_of.setdefault(a["category_id"], set()).add(a["image_id"])
    for cat in train["categories"]:
        n = len(images_of.get(cat["id"], ()))
        assert cat["image_count"] == n
        assert cat["frequency"] == ("r" if n <= 10 else "c" if n <= 100 else "f")
    assert _load(out, "test")["categories"] == train["categories"]  # tags from train everywhere
    rare = [n for n, t in zip(stats["image_counts"]["train"], stats["frequency"]) if t == "r"]
    assert len(rare) >= 3 and all(1 <= n <= 10 for n in rare)
    assert "f" in stats["frequency"] and "c" in stats["frequency"]
    table = format_class_table(stats)
    assert len(table.splitlines()) == 13 and " r " in table


def test_zipf_exponent_fits_back(tmp_path):
    """Fit log(object share) ~ -s log(rank) on the classes with ≥ 20 objects (Poisson noise of
    a count n is ~1/sqrt(n) in log, so the tail beyond that would dominate the slope's error)."""
    for zipf in (0.8, 1.5):
        stats = make_synthetic_dataset(tmp_path / str(zipf), images=1500, classes=8, zipf=zipf,
                                       image_size=48)
        counts = sum(_object_shares(tmp_path / str(zipf), s, 8) * stats["objects"][s]
                     for s in ("train", "val", "test"))
        shares, ranks = counts / counts.sum(), np.array(stats["ranks"])
        keep = counts >= 20
        assert keep.sum() >= 4
        slope = np.polyfit(np.log(ranks[keep]), np.log(shares[keep]), 1)[0]
        assert abs(-slope - zipf) < 0.2, (zipf, slope)
    ranks, prior = class_prior(12, 1.2)
    assert np.polyfit(np.log(ranks), np.log(prior), 1)[0] == pytest.approx(-1.2)


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_empty_fraction(tmp_path, fraction):
    stats = make_synthetic_dataset(tmp_path, images=400, image_size=48, empty_fraction=fraction)
    n_empty = sum(stats["empty_images"].values())
    assert n_empty == round(400 * fraction)
    with_boxes = set()
    for split in ("train", "val", "test"):
        with_boxes |= {a["image_id"] for a in _load(tmp_path, split)["annotations"]}
    assert 400 - len(with_boxes) == n_empty
    # YOLO layout: empty images get empty label files
    empty_labels = [p for p in (tmp_path / "yolo" / "labels").rglob("*.txt") if not p.read_text()]
    assert len(empty_labels) == n_empty


def test_label_shift_moves_test_prior(tmp_path):
    def shares(spec, name):
        make_synthetic_dataset(tmp_path / name, images=2000, classes=8, image_size=40,
                               label_shift=spec, seed=3)
        return (_object_shares(tmp_path / name, "train", 8),
                _object_shares(tmp_path / name, "test", 8))

    train, test = shares(None, "none")
    assert np.abs(train - test).sum() < 0.1  # total variation 0.05: sampling noise only
    _, tweaked = shares("tweak:6:0.3", "tweak")
    assert train[6] < 0.02 and tweaked[6] == pytest.approx(0.3, abs=0.05)
    _, dirichlet = shares("dirichlet:1", "dirichlet")
    assert np.abs(train - dirichlet).sum() > 0.2
    for split in ("train", "val"):  # the shift touches the test split only
        plain, shifted = _load(tmp_path / "none", split), _load(tmp_path / "dirichlet", split)
        assert plain["annotations"] == shifted["annotations"]
        name = plain["images"][-1]["file_name"]
        assert (tmp_path / "none" / "images" / name).read_bytes() == \
            (tmp_path / "dirichlet" / "images" / name).read_bytes()


def _tree_hash(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("family, images, shape", [("shapes", 40, {"label_shift": "dirichlet:2"}),
                                                    ("textures", 30, {})])
def test_same_seed_same_bytes(tmp_path, family, images, shape):
    out = tmp_path / "set"
    make_synthetic_dataset(out, images=images, image_size=64, seed=5, family=family, **shape)
    first = _tree_hash(out)
    shutil.rmtree(out)  # same path again: dataset.yaml holds the absolute path
    make_synthetic_dataset(out, images=images, image_size=64, seed=5, family=family, **shape)
    assert _tree_hash(out) == first
    shutil.rmtree(out)
    make_synthetic_dataset(out, images=images, image_size=64, seed=6, family=family, **shape)
    assert _tree_hash(out) != first


def test_annotations_load_in_lvis_and_coco(default_set):
    from lvis.lvis import LVIS
    from pycocotools.coco import COCO

    out, stats = default_set
    ids = set()
    for split in ("train", "val", "test"):
        path = str(out / "annotations" / f"{split}.json")
        lvis, coco = LVIS(path), COCO(path)
        assert len(lvis.imgs) == len(coco.imgs) == stats["sizes"][split]
        assert len(coco.getCatIds()) == 12
        assert not ids & set(coco.imgs)  # image ids unique across splits
        ids |= set(coco.imgs)
        for img in lvis.dataset["images"]:
            present = {a["category_id"] for a in lvis.img_ann_map[img["id"]]}
            assert set(img["neg_category_ids"]) == set(range(1, 13)) - present
            assert img["not_exhaustive_category_ids"] == []
        ann = coco.dataset["annotations"][0]
        assert ann["area"] == ann["bbox"][2] * ann["bbox"][3] and ann["segmentation"]


@pytest.mark.parametrize("spec", ["dirichlet", "dirichlet:0", "dirichlet:x", "tweak:1",
                                  "tweak:-1:0.5", "tweak:1:1.5", "uniform:3", ""])
def test_bad_label_shift(spec):
    with pytest.raises(ConfigError, match="--label-shift"):
        parse_label_shift(spec)


def test_label_shift_specs_parse_and_class_checked(tmp_path):
    assert parse_label_shift("dirichlet:0.5").alpha == 0.5
    shift = parse_label_shift("tweak:3:0.25")
    assert (shift.kind, shift.cls, shift.rho) == ("tweak", 3, 0.25)
    with pytest.raises(ConfigError, match="--label-shift"):
        make_synthetic_dataset(tmp_path, images=10, classes=4, label_shift="tweak:4:0.5")
    assert [frequency_tag(n) for n in (0, 10, 11, 100, 101)] == ["r", "r", "c", "c", "f"]


def test_eval_min_instances_fills_val_and_test_never_train(tmp_path):
    plain = make_synthetic_dataset(tmp_path / "plain", images=300, classes=8, image_size=32, seed=4)
    filled = make_synthetic_dataset(tmp_path / "filled", images=300, classes=8, image_size=32,
                                    seed=4, eval_min_instances=25)
    assert min(plain["instances"]["val"]) < 25  # the natural tail leaves val short
    for split in ("val", "test"):
        counts = np.bincount([a["category_id"] - 1 for a in _load(tmp_path / "filled", split)["annotations"]],
                             minlength=8)
        assert counts.min() >= 25 and counts.tolist() == filled["instances"][split]
        added = filled["sizes"][split] - plain["sizes"][split]
        assert added == filled["eval_fill"][split]["images"] > 0
        # the split's own images are kept; the extra ones come after them
        old, new = _load(tmp_path / "plain", split), _load(tmp_path / "filled", split)
        assert [len(_boxes_of(old, i["id"])) for i in old["images"]] == \
            [len(_boxes_of(new, i["id"])) for i in new["images"][:len(old["images"])]]
    # train, its tags and its pixels are untouched
    assert _load(tmp_path / "plain", "train") == _load(tmp_path / "filled", "train")
    assert filled["image_counts"]["train"] == plain["image_counts"]["train"]
    assert filled["frequency"] == plain["frequency"]
    for path in (tmp_path / "plain" / "images" / "train").iterdir():
        assert path.read_bytes() == (tmp_path / "filled" / "images" / "train" / path.name).read_bytes()
    assert filled["eval_min_instances"] == 25 and plain["eval_fill"]["val"]["images"] == 0
    saved = json.loads((tmp_path / "filled" / "stats.json").read_text())
    assert saved["eval_fill"] == filled["eval_fill"]


def _boxes_of(data, image_id):
    return [a for a in data["annotations"] if a["image_id"] == image_id]


def test_eval_min_instances_is_the_cli_default_and_checked(tmp_path, capsys):
    from taast_ray.cli import main, make_parser

    args = make_parser().parse_args(["synth", "--out", str(tmp_path)])
    assert args.eval_min_instances == 25
    with pytest.raises(ConfigError, match="--eval-min-instances"):
        make_synthetic_dataset(tmp_path / "bad", images=20, eval_min_instances=-1)
    assert main(["synth", "--out", str(tmp_path / "x"), "--eval-min-instances", "-1"]) == 2
    assert "--eval-min-instances" in capsys.readouterr().err
