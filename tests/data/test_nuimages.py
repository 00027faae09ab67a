"""nuImages tables (schema of nuscenes-devkit docs/schema_nuimages.md) → LVIS-style COCO JSON."""
import json

import pytest

from taast_ray.cli import main
from taast_ray.data.labels import load_labels
from taast_ray.data.nuimages import nuimages_to_coco
from taast_ray.errors import InputError


def _tables(root, version, anns, extra_category=None):
    folder = root / version
    folder.mkdir(parents=True)
    cats = [{"token": "c-car", "name": "vehicle.car", "description": ""},
            {"token": "c-ped", "name": "human.pedestrian.adult", "description": ""},
            {"token": "c-bus", "name": "vehicle.bus.rigid", "description": ""},
            {"token": "c-road", "name": "flat.driveable_surface", "description": ""}]
    samples = [{"token": f"s{i}", "timestamp": i, "log_token": "l", "key_camera_token": f"sd{i}",
                "key_lidar_token": ""} for i in range(3)]
    data = [{"token": f"sd{i}", "sample_token": f"s{i}", "filename": f"samples/CAM_FRONT/{i}.jpg",
             "fileformat": "jpg", "width": 1600, "height": 900, "is_key_frame": True} for i in range(3)]
    data.append({"token": "sweep", "sample_token": "s0", "filename": "sweeps/CAM_FRONT/x.jpg",
                 "fileformat": "jpg", "width": 1600, "height": 900, "is_key_frame": False})
    tables = {"category": cats + ([extra_category] if extra_category else []), "sample": samples,
              "sample_data": data, "object_ann": anns}
    for name, rows in tables.items():
        (folder / f"{name}.json").write_text(json.dumps(rows))


def _ann(token, sd, cat, box):
    return {"token": token, "sample_data_token": sd, "category_token": cat, "attribute_tokens": [],
            "bbox": box, "mask": None}


def test_key_frames_boxes_and_categories(tmp_path):
    _tables(tmp_path, "v1.0-train", [_ann("a1", "sd0", "c-car", [10, 20, 110, 70]),
                                     _ann("a2", "sd0", "c-ped", [0, 0, 5, 10]),
                                     _ann("a3", "sd2", "c-car", [1, 1, 2, 3])])
    out = nuimages_to_coco(tmp_path, "v1.0-train")
    assert [i["file_name"] for i in out["images"]] == [f"samples/CAM_FRONT/{i}.jpg" for i in range(3)]
    # ids by sorted name; the surface class has no boxes and is left out; the unused bus stays
    assert [(c["id"], c["name"], c["frequency"], c["image_count"]) for c in out["categories"]] == [
        (1, "human.pedestrian.adult", "r", 1), (2, "vehicle.bus.rigid", "r", 0), (3, "vehicle.car", "r", 2)]
    a1 = next(a for a in out["annotations"] if a["id"] == 1)
    assert (a1["image_id"], a1["category_id"], a1["bbox"], a1["area"]) == (1, 3, [10.0, 20.0, 100.0, 50.0], 5000.0)
    path = tmp_path / "train.json"
    path.write_text(json.dumps(out))
    assert load_labels(path).num_classes == 3


def test_val_takes_the_training_tags(tmp_path):
    train = {"categories": [{"id": 1, "name": "vehicle.car", "frequency": "f"},
                            {"id": 2, "name": "human.pedestrian.adult", "frequency": "c"}]}
    (tmp_path / "train.json").write_text(json.dumps(train))
    _tables(tmp_path, "v1.0-val", [_ann("a1", "sd1", "c-car", [0, 0, 4, 4])])
    out = nuimages_to_coco(tmp_path, "v1.0-val", frequency_from=tmp_path / "train.json")
    assert {c["name"]: c["frequency"] for c in out["categories"]} == {
        "human.pedestrian.adult": "c", "vehicle.bus.rigid": "r", "vehicle.car": "f"}


@pytest.mark.parametrize("ann, message", [
    (_ann("bad", "sd9", "c-car", [0, 0, 4, 4]), "not a key-frame image"),
    (_ann("bad", "sweep", "c-car", [0, 0, 4, 4]), "not a key-frame image"),
    (_ann("bad", "sd0", "c-car", [5, 5, 5, 9]), "empty box"),
    (_ann("bad", "sd0", "c-what", [0, 0, 4, 4]), "not in category.json"),
])
def test_bad_records_are_named(tmp_path, ann, message):
    _tables(tmp_path, "v1.0-train", [ann])
    with pytest.raises(InputError, match=message):
        nuimages_to_coco(tmp_path, "v1.0-train")


def test_command_line(tmp_path, capsys):
    _tables(tmp_path, "v1.0-mini", [_ann("a1", "sd0", "c-car", [0, 0, 4, 4])])
    assert main(["nuimages", "--root", str(tmp_path), "--version", "v1.0-mini", "--out", str(tmp_path / "m.json")]) == 0
    assert "3 key frames, 1 boxes, 3 categories" in capsys.readouterr().out
    assert main(["nuimages", "--root", str(tmp_path), "--version", "v1.0-nope", "--out", str(tmp_path / "x.json")]) == 2
    assert "nuImages table not found" in capsys.readouterr().err
