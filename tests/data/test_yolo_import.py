"""`taast import yolo`: Ultralytics layout → COCO JSON (ids from 1, names kept) + pool manifest."""
import json

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from taast_ray.data.yolo_import import import_yolo, label_path
from taast_ray.errors import InputError


def image(path, size=(200, 100)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)


def dataset(root, labels: dict[str, str], extra=("images/train/c.jpg",), names=None):
    """Images a.jpg, b.jpg under images/train (+ extra without labels), v.jpg under images/val."""
    for name in ("images/train/a.jpg", "images/train/b.jpg", "images/val/v.jpg", *extra):
        image(root / name)
    for name, text in labels.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    spec = {"path": ".", "train": "images/train", "val": "images/val",
            "names": names or {0: "car", 1: "person"}}
    (root / "data.yaml").write_text(yaml.safe_dump(spec))
    return root / "data.yaml"


def test_boxes_categories_and_pool(tmp_path):
    src = dataset(tmp_path / "ds", {
        "labels/train/a.txt": "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n",
        "labels/train/b.txt": "",                        # labelled, no objects
        "labels/val/v.txt": "0 0.2 0.4 0.6 0.4 0.6 0.8 0.2 0.8\n"})  # a polygon: its bounding box
    result = import_yolo(src, tmp_path / "out")
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    assert train["categories"] == [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
    assert [(i["file_name"], i["width"], i["height"]) for i in train["images"]] == \
        [("images/train/a.jpg", 200, 100), ("images/train/b.jpg", 200, 100)]
    # 200 x 100: cx 0.5 w 0.2 → x 80..120; cy 0.5 h 0.4 → y 30..70
    assert [(a["category_id"], a["bbox"]) for a in train["annotations"]] == \
        [(2, [80.0, 30.0, 40.0, 40.0]), (1, [0.0, 0.0, 40.0, 20.0])]
    val = json.loads((tmp_path / "out" / "val.json").read_text())
    assert val["annotations"][0]["bbox"] == [40.0, 40.0, 80.0, 40.0]
    assert val["images"][0]["id"] == 3  # ids unique across the splits
    pool = pq.read_table(tmp_path / "out" / "pool.parquet").to_pylist()
    assert pool == [{"image_id": "images/train/c.jpg", "uri": str((tmp_path / "ds/images/train/c.jpg").resolve())}]
    data = yaml.safe_load((tmp_path / "out" / "taast.yaml").read_text())["data"]
    assert data["images"] == str((tmp_path / "ds").resolve()) and data["val"].endswith("val.json")
    assert result["splits"]["train"] == {"images": 2, "boxes": 2, "unlabelled_skipped": 0}


def test_pool_entry_and_extra_folder(tmp_path):
    src = dataset(tmp_path / "ds", {"labels/train/a.txt": "", "labels/train/b.txt": ""}, extra=())
    spec = yaml.safe_load(src.read_text())
    image(tmp_path / "ds" / "frames" / "f1.png")
    image(tmp_path / "more" / "m1.jpg")
    src.write_text(yaml.safe_dump({**spec, "pool": "frames", "names": ["car", "person"]}))
    import_yolo(src, tmp_path / "out", extra_pool=[str(tmp_path / "more")])
    ids = pq.read_table(tmp_path / "out" / "pool.parquet").column("image_id").to_pylist()
    assert ids == sorted(["frames/f1.png", str((tmp_path / "more" / "m1.jpg").resolve())])


@pytest.mark.parametrize("text, message", [
    ("5 0.5 0.5 0.1 0.1", "class 5 is not in names"),
    ("0 0.5 0.5 0.1", "expected 'class cx cy w h'"),
    ("0 0.5 0.5 0 0.1", "positive area"),
    ("x 0.5 0.5 0.1 0.1", "numbers"),
])
def test_bad_label_lines_are_one_line_errors(tmp_path, text, message):
    src = dataset(tmp_path / "ds", {"labels/train/a.txt": f"0 0.5 0.5 0.1 0.1\n{text}\n"})
    with pytest.raises(InputError, match=message) as err:
        import_yolo(src, tmp_path / "out")
    assert "a.txt: line 2" in str(err.value) and "\n" not in str(err.value)


def test_not_a_data_yaml(tmp_path):
    (tmp_path / "x.yaml").write_text("train: images\n")
    with pytest.raises(InputError, match="no 'names'"):
        import_yolo(tmp_path / "x.yaml", tmp_path / "out")


def test_label_path_follows_ultralytics(tmp_path):
    assert label_path(tmp_path / "images" / "x" / "images" / "a.jpg") == tmp_path / "images" / "x" / "labels" / "a.txt"


def test_a_refused_import_leaves_out_as_it_found_it(tmp_path):
    """train is read fine, val's label file is bad: nothing is written (train.json was, once)."""
    src = dataset(tmp_path / "ds", {"labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n", "labels/train/b.txt": "",
                                    "labels/val/v.txt": "7 0.5 0.5 0.2 0.2\n"})
    out = tmp_path / "out"
    with pytest.raises(InputError):
        import_yolo(src, out)
    assert not out.exists() or not any(out.iterdir())
    (tmp_path / "ds" / "labels" / "val" / "v.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    import_yolo(src, out)
    assert sorted(p.name for p in out.iterdir()) == \
        ["manifest.json", "pool.parquet", "taast.yaml", "train.json", "val.json"]  # published as one set


def test_files_saved_with_a_byte_order_mark_read_as_without(tmp_path):
    """Windows editors save UTF-8 with a BOM; it is not part of a class index or a name."""
    src = dataset(tmp_path / "ds", {"labels/train/a.txt": "\ufeff1 0.5 0.5 0.2 0.4\n", "labels/train/b.txt": "",
                                    "labels/val/v.txt": ""})
    src.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    import_yolo(src, tmp_path / "out")
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    assert [c["name"] for c in train["categories"]] == ["car", "person"]
    assert [a["category_id"] for a in train["annotations"]] == [2]
