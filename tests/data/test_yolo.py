"""COCO/LVIS JSON → YOLO layout: Ultralytics reads it back with the same boxes and classes."""
import json

import numpy as np
import pytest
from PIL import Image

import taast_ray  # noqa: F401  (offline switches before Ultralytics)
from taast_ray.data.synth import make_synthetic_dataset
from taast_ray.data.yolo import export_yolo, yolo_line
from taast_ray.errors import InputError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("yolo") / "set"
    return out, make_synthetic_dataset(out, images=40, image_size=64, seed=1, empty_fraction=0.1)


def _expected(ann_file):
    """{image file stem: sorted [(class, cx, cy, w, h)]} straight from the JSON."""
    doc = json.loads(ann_file.read_text())
    index = {c["id"]: k for k, c in enumerate(sorted(doc["categories"], key=lambda c: c["id"]))}
    size = {img["id"]: (img["width"], img["height"]) for img in doc["images"]}
    rows = {img["id"]: [] for img in doc["images"]}
    for a in doc["annotations"]:
        (x, y, w, h), (W, H) = a["bbox"], size[a["image_id"]]
        rows[a["image_id"]].append((index[a["category_id"]], (x + w / 2) / W, (y + h / 2) / H,
                                    w / W, h / H))
    names = {img["id"]: img["file_name"].split("/")[-1].rsplit(".", 1)[0] for img in doc["images"]}
    return {names[i]: sorted(r) for i, r in rows.items()}


def test_check_det_dataset_and_labels_match_json(synth):
    from ultralytics.data.utils import check_det_dataset

    out, stats = synth
    data = check_det_dataset(str(stats["dataset_yaml"]))
    assert data["nc"] == 12 and [data["names"][k] for k in range(12)] == stats["names"]
    for split in ("train", "val", "test"):
        expected = _expected(out / "annotations" / f"{split}.json")
        label_dir = out / "yolo" / "labels" / split
        assert sorted(p.stem for p in label_dir.glob("*.txt")) == sorted(expected)
        for stem, rows in expected.items():
            text = (label_dir / f"{stem}.txt").read_text().split()
            got = np.array(text, dtype=float).reshape(-1, 5)
            got = got[np.lexsort(got.T[::-1])]
            assert np.allclose(got, np.array(rows).reshape(-1, 5), atol=1e-5)
            assert (out / "yolo" / "images" / split / f"{stem}.jpg").is_file()


def test_ultralytics_dataset_reads_the_boxes(synth):
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    out, stats = synth
    data = check_det_dataset(str(stats["dataset_yaml"]))
    cfg = get_cfg(overrides={"imgsz": 64})
    dataset = build_yolo_dataset(cfg, data["val"], batch=4, data=data, mode="val")
    expected = _expected(out / "annotations" / "val.json")
    assert len(dataset.labels) == stats["sizes"]["val"]
    for label in dataset.labels:
        rows = np.hstack([label["cls"], label["bboxes"]]).reshape(-1, 5)
        rows = rows[np.lexsort(rows.T[::-1])]
        stem = label["im_file"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        assert np.allclose(rows, np.array(expected[stem]).reshape(-1, 5), atol=1e-5)
    batch = dataset[0]
    assert tuple(batch["img"].shape[1:]) == (64, 64)


def _coco(tmp_path, annotations, file_name="cams/a/frame1.png"):
    (tmp_path / "imgs" / "cams" / "a").mkdir(parents=True)
    Image.new("RGB", (200, 100)).save(tmp_path / "imgs" / file_name)
    Image.new("RGB", (200, 100)).save(tmp_path / "imgs" / "empty.png")
    doc = {"images": [{"id": 7, "file_name": file_name, "width": 200, "height": 100},
                      {"id": 8, "file_name": "empty.png", "width": 200, "height": 100}],
           "annotations": annotations,
           "categories": [{"id": 9, "name": "truck"}, {"id": 2, "name": "car"}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(doc))
    return path, doc["categories"]


def test_generic_coco_export(tmp_path):
    anns = [{"id": 1, "image_id": 7, "category_id": 9, "bbox": [10, 20, 50, 40], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [190, 90, 30, 30]},   # clipped
            {"id": 3, "image_id": 7, "category_id": 2, "bbox": [0, 0, 9, 9], "iscrowd": 1}]
    path, cats = _coco(tmp_path, anns)
    yaml_path = export_yolo({"train": path, "val": path}, tmp_path / "imgs", tmp_path / "yolo",
                            cats)
    lines = (tmp_path / "yolo" / "labels" / "val" / "cams__a__frame1.txt").read_text().splitlines()
    # ids ordered 2 (car) → 0, 9 (truck) → 1; the crowd box is skipped
    assert lines == ["1 0.175000 0.400000 0.250000 0.400000",
                     "0 0.975000 0.950000 0.050000 0.100000"]
    assert (tmp_path / "yolo" / "labels" / "train" / "empty.txt").read_text() == ""
    assert (tmp_path / "yolo" / "images" / "train" / "cams__a__frame1.png").is_file()
    from ultralytics.data.utils import check_det_dataset

    assert check_det_dataset(str(yaml_path))["names"] == {0: "car", 1: "truck"}


def test_absolute_file_names_stay_inside_the_split_folder(tmp_path):
    """Pseudo-labelled pool images carry absolute paths (a pool URI); they were once written to /."""
    path, cats = _coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 9, "bbox": [10, 20, 50, 40]}])
    data = json.loads(path.read_text())
    for img in data["images"]:
        img["file_name"] = str((tmp_path / "imgs" / img["file_name"]).resolve())
    path.write_text(json.dumps(data))
    export_yolo({"train": path}, tmp_path / "elsewhere", tmp_path / "yolo", cats)
    labels = sorted(p.name for p in (tmp_path / "yolo" / "labels" / "train").iterdir())
    assert len(labels) == len(data["images"])
    frame = "__".join((tmp_path / "imgs" / "cams" / "a" / "frame1.txt").resolve().parts[1:])
    assert (tmp_path / "yolo" / "labels" / "train" / frame).read_text().startswith("1 ")


@pytest.mark.parametrize("bad, needle", [({"category_id": 5}, "unknown category"),
                                         ({"image_id": 99}, "unknown image")])
def test_bad_annotation_names_file_and_record(tmp_path, bad, needle):
    ann = {"id": 42, "image_id": 7, "category_id": 9, "bbox": [1, 1, 5, 5], **bad}
    path, cats = _coco(tmp_path, [ann])
    with pytest.raises(InputError, match=f"train.json: annotation 42 .*{needle}"):
        export_yolo({"train": path}, tmp_path / "imgs", tmp_path / "yolo", cats)


def test_missing_image_and_degenerate_box(tmp_path):
    path, cats = _coco(tmp_path, [])
    (tmp_path / "imgs" / "empty.png").unlink()
    with pytest.raises(InputError, match="empty.png"):
        export_yolo({"train": path}, tmp_path / "imgs", tmp_path / "yolo", cats)
    assert yolo_line([10, 10, 0, 5], 100, 100, 0) is None
    assert yolo_line([120, 10, 5, 5], 100, 100, 0) is None  # wholly outside the image
