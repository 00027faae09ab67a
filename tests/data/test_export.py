"""`taast export`: a selection's images with the detector's boxes, as COCO, YOLO and Label Studio."""
import json

import pytest
import yaml
from PIL import Image

from taast_ray.cli import main
from taast_ray.data.export import export_selection
from taast_ray.errors import InputError
from taast_ray.io import check_output_set

CATS = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]


def selection(tmp_path):
    """What a selection publishes: tasks in rank order (boxes in percent), and the categories."""
    folder = tmp_path / "select"
    folder.mkdir()
    tasks = []
    for n, (key, size) in enumerate((("cam/a.jpg", (200, 100)), ("cam/b.jpg", (50, 40)))):
        uri = tmp_path / "images" / key
        uri.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size).save(uri)
        result = [{"type": "rectanglelabels", "from_name": "label", "to_name": "image", "score": 0.4,
                   "original_width": size[0], "original_height": size[1],
                   "value": {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, "rectanglelabels": ["person"]}}]
        tasks.append({"data": {"image": str(uri), "image_id": key, "rank": n},
                      "predictions": [{"model_version": "taast-ray", "result": result if n == 0 else []}]})
    (folder / "label_studio_tasks.json").write_text(json.dumps(tasks))
    (folder / "pseudo_labels.json").write_text(json.dumps({"images": [], "annotations": [], "categories": CATS}))
    return folder


def test_coco_export_has_pixel_pre_annotations(tmp_path):
    export_selection(selection(tmp_path), "coco", tmp_path / "q.json")
    doc = json.loads((tmp_path / "q.json").read_text())
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in doc["images"]] == \
        [(1, "cam/a.jpg", 200, 100), (2, "cam/b.jpg", 50, 40)]
    assert [(a["image_id"], a["category_id"], a["bbox"], a["score"]) for a in doc["annotations"]] == \
        [(1, 2, [20.0, 20.0, 60.0, 40.0], 0.4)]
    assert doc["categories"] == CATS


def test_yolo_export_is_a_dataset_folder(tmp_path):
    export_selection(selection(tmp_path), "yolo", tmp_path / "y")
    assert (tmp_path / "y" / "labels" / "cam__a.txt").read_text() == "1 0.250000 0.400000 0.300000 0.400000\n"
    assert (tmp_path / "y" / "labels" / "cam__b.txt").read_text() == ""
    assert (tmp_path / "y" / "images" / "cam__a.jpg").is_file()
    assert yaml.safe_load((tmp_path / "y" / "dataset.yaml").read_text())["names"] == {0: "car", 1: "person"}
    manifest = check_output_set(tmp_path / "y")  # a manifest like a selection's: every file, whole
    assert sorted(manifest["files"]) == ["dataset.yaml", "images/cam__a.jpg", "images/cam__b.jpg",
                                         "labels/cam__a.txt", "labels/cam__b.txt"]


def test_label_studio_export_with_an_image_url(tmp_path):
    folder = selection(tmp_path)
    assert main(["export", str(folder), "--format", "labelstudio", "--out", str(tmp_path / "t.json"),
                 "--image-url", "/data/local-files/?d=images/"]) == 0
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=images/cam/a.jpg",
                                                    "/data/local-files/?d=images/cam/b.jpg"]
    assert tasks[0]["predictions"][0]["result"][0]["value"]["rectanglelabels"] == ["person"]


def test_label_studio_export_for_local_file_serving_with_its_labelling_config(tmp_path, capsys):
    folder = selection(tmp_path)
    out = tmp_path / "ls" / "tasks.json"
    out.parent.mkdir()
    assert main(["export", str(folder), "--format", "labelstudio", "--out", str(out),
                 "--document-root", str(tmp_path)]) == 0
    tasks = json.loads(out.read_text())
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=images/cam/a.jpg",
                                                    "/data/local-files/?d=images/cam/b.jpg"]
    printed = capsys.readouterr().out
    assert "images referenced as local-files" in printed
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={tmp_path.resolve()}" in printed
    # the config names the controls the predictions use, and every category
    import xml.etree.ElementTree as ET

    view = ET.fromstring((out.parent / "label_config.xml").read_text())
    image, rect = view.find("Image"), view.find("RectangleLabels")
    result = tasks[0]["predictions"][0]["result"][0]
    assert (rect.get("name"), rect.get("toName"), image.get("name")) == \
        (result["from_name"], result["to_name"], result["to_name"])
    assert image.get("value") == "$image" and [l.get("value") for l in rect] == ["car", "person"]
    with pytest.raises(InputError, match="is not under it"):
        export_selection(folder, "labelstudio", tmp_path / "x.json", document_root=tmp_path / "elsewhere")
    with pytest.raises(InputError, match="give one of them"):
        export_selection(folder, "labelstudio", tmp_path / "x.json", image_url="http://h/",
                         document_root=tmp_path)


def test_label_studio_export_says_when_its_paths_cannot_be_served(tmp_path):
    result = export_selection(selection(tmp_path), "labelstudio", tmp_path / "t.json")
    assert result["image_refs"] == "filesystem-paths" and "--document-root" in result["label_studio_needs"]


def test_not_a_selection(tmp_path):
    with pytest.raises(InputError, match="not a selection output folder"):
        export_selection(tmp_path, "coco", tmp_path / "x.json")


def test_a_yolo_export_whose_image_is_gone_leaves_out_as_it_was(tmp_path):
    folder = selection(tmp_path)
    export_selection(folder, "yolo", tmp_path / "y")
    before = sorted(str(p.relative_to(tmp_path / "y")) for p in (tmp_path / "y").rglob("*"))
    (tmp_path / "images" / "cam" / "b.jpg").unlink()
    with pytest.raises(InputError, match="b.jpg: (image file not found|cannot read the image)"):
        export_selection(folder, "yolo", tmp_path / "y")
    assert sorted(str(p.relative_to(tmp_path / "y")) for p in (tmp_path / "y").rglob("*")) == before
    with pytest.raises(InputError):
        export_selection(folder, "yolo", tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists() and not list(tmp_path.glob(".fresh*"))
    with pytest.raises(InputError):  # found by the export fuzzer: its new folders stayed behind
        export_selection(folder, "yolo", tmp_path / "sub" / "dir" / "y")
    assert not (tmp_path / "sub").exists()


def test_a_selection_saved_with_a_byte_order_mark_exports(tmp_path):
    folder = selection(tmp_path)
    tasks = folder / "label_studio_tasks.json"
    tasks.write_bytes(b"\xef\xbb\xbf" + tasks.read_bytes())
    export_selection(folder, "coco", tmp_path / "out.json")
    assert len(json.loads((tmp_path / "out.json").read_text())["images"]) == 2


def test_label_studio_export_keeps_object_store_uris_for_cloud_storage():
    from taast_ray.data.export import image_references

    tasks = [{"data": {"image": "s3://fleet/cam/a.jpg", "image_id": "cam/a.jpg"}},
             {"data": {"image": "gs://fleet/cam/b.jpg", "image_id": "cam/b.jpg"}}]
    out, refs, needs = image_references(tasks, None, None)
    assert refs == "object-store" and out == tasks and "Cloud Storage" in needs
    with pytest.raises(InputError, match="s3://fleet/cam/a.jpg.* is not under it"):
        image_references(tasks, None, "/data")


@pytest.mark.parametrize("failing", ["write_json", "write_text"])  # the tasks, the labelling config
def test_a_label_studio_export_that_fails_writes_neither_file(tmp_path, monkeypatch, failing):
    """The tasks and their labelling config are one set: a failure while writing either (a full
    disk, say) leaves neither, and no temporary file."""
    import taast_ray.data.export as export

    folder = selection(tmp_path)
    out = tmp_path / "out"
    out.mkdir()

    def full_disk(path, value):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(export, failing, full_disk)
    with pytest.raises(OSError):
        export_selection(folder, "labelstudio", out / "tasks.json", image_url="http://x/")
    assert list(out.iterdir()) == []
