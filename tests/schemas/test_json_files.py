"""The schema layer of issue 31: every rule refused with its exact one line (file, record, field),
and real-looking COCO, LVIS, Label Studio and JSON_MIN documents passing whole."""
import copy
import gc

import pytest

from taast_ray.schemas.json_files import (JSON_MIN_EXPORT, LABEL_DOCUMENT, LABEL_STUDIO_EXPORT, SELECTION_CATEGORIES,
                                         SELECTION_TASKS, parse)
from taast_ray.data import labelstudio
from taast_ray.errors import InputError

RUN_LABELS = {"category_names": {"car", "bus"}}

COCO = {
    "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
    "licenses": [{"id": 1, "name": "Attribution License", "url": "http://creativecommons.org/licenses/by/2.0/"}],
    "images": [{"id": 397133, "license": 4, "file_name": "000000397133.jpg", "height": 427, "width": 640,
                "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
                "date_captured": "2013-11-14 17:02:52"},
               {"id": 37777, "license": 1, "file_name": "000000037777.jpg", "height": 230, "width": 352}],
    "annotations": [{"id": 17, "image_id": 397133, "category_id": 1, "iscrowd": 0, "area": 702.1,
                     "segmentation": [[510.66, 423.01, 511.72, 420.03, 510.45, 416.0]],
                     "bbox": [473.07, 395.93, 38.65, 28.67]},
                    {"id": 18, "image_id": 37777, "category_id": 2, "iscrowd": 1, "area": 120,
                     "segmentation": {"counts": [272, 2, 4], "size": [230, 352]}, "bbox": [0, 0, 12, 10]}],
    "categories": [{"supercategory": "vehicle", "id": 1, "name": "car"},
                   {"supercategory": "vehicle", "id": 2, "name": "bus"}],
}

LVIS = {
    "info": {"description": "LVIS v1"}, "licenses": [],
    "images": [{"id": 9, "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg",
                "height": 480, "width": 640, "neg_category_ids": [2], "not_exhaustive_category_ids": [],
                "file_name": "train2017/000000000009.jpg"}],
    "annotations": [{"id": 1, "image_id": 9, "category_id": 3, "area": 1035.7, "segmentation": [[1.0, 2.0, 3.0]],
                     "bbox": [13.36, 40.7, 51.3, 40.4]}],  # LVIS has no iscrowd
    "categories": [{"id": 1, "name": "aerosol_can", "frequency": "c", "synset": "aerosol.n.02",
                    "synonyms": ["aerosol_can", "spray_can"], "def": "a dispenser", "image_count": 64,
                    "instance_count": 109},
                   {"id": 2, "name": "air_conditioner", "frequency": "f", "synset": "air_conditioner.n.01",
                    "image_count": 364, "instance_count": 1207},
                   {"id": 3, "name": "bait", "frequency": "r", "synset": "bait.n.01", "image_count": 3,
                    "instance_count": 4}],
}


def rect(x=10.0, y=20.0, width=30.0, height=40.0, labels=("car",), **value):
    return {"id": "Ab3kq", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "origin": "manual",
            "original_width": 200, "original_height": 100, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": width, "height": height, "rotation": 0,
                      "rectanglelabels": list(labels), **value}}


def ls_task(*results, task_id=5, cancelled=False):
    """A task as Label Studio's JSON export writes it."""
    return {"id": task_id, "data": {"image": "/data/local-files/?d=pool/a.jpg", "image_id": "pool/a.jpg"},
            "annotations": [{"id": 31, "completed_by": 1, "result": list(results), "was_cancelled": cancelled,
                             "ground_truth": False, "created_at": "2026-12-01T10:00:00.000Z",
                             "updated_at": "2026-12-01T10:00:00.000Z", "lead_time": 12.5, "prediction": {},
                             "result_count": len(results), "task": task_id, "project": 3}],
            "drafts": [], "predictions": [], "meta": {}, "created_at": "2026-12-01T09:00:00.000Z",
            "inner_id": 1, "total_annotations": 1, "cancelled_annotations": int(cancelled)}


def json_min(**changes):
    record = {"image": "/data/local-files/?d=pool/a.jpg", "image_id": "pool/a.jpg", "id": 5,
              "label": [{"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["car"],
                         "original_width": 200, "original_height": 100}],
              "annotator": 1, "annotation_id": 4, "created_at": "2026-12-01T10:00:00Z",
              "updated_at": "2026-12-01T10:00:00Z", "lead_time": 3.2}
    return {**record, **changes}


def refused(contract, raw, context=None) -> str:
    with pytest.raises(InputError) as err:
        parse(contract, raw, "f.json", context)
    message = str(err.value)
    assert "\n" not in message
    return message


def edited(doc: dict, edit) -> dict:
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


# --- valid documents pass, unknown keys kept ------------------------------------------------------

def test_a_coco_document_passes_with_its_unknown_keys():
    doc = parse(LABEL_DOCUMENT, COCO, "coco.json")
    assert doc.annotations[1]["segmentation"]["size"] == [230, 352]
    assert doc.licenses == COCO["licenses"] and doc.categories[0]["supercategory"] == "vehicle"


def test_an_lvis_document_with_frequency_tags_passes():
    doc = parse(LABEL_DOCUMENT, LVIS, "lvis.json")
    assert [c["frequency"] for c in doc.categories] == ["c", "f", "r"]
    assert doc.images[0]["neg_category_ids"] == [2]


def test_a_label_studio_export_with_a_cancelled_annotation_and_a_rotation_passes():
    choices = {"id": "c1", "type": "choices", "from_name": "quality", "to_name": "image",
               "value": {"choices": ["good"]}}
    relation = {"type": "relation", "from_id": "Ab3kq", "to_id": "Zz1", "direction": "right", "labels": []}
    export = [ls_task(rect(rotation=12.5), choices, relation),
              ls_task(rect(), task_id=6, cancelled=True),
              {"id": 7, "data": {"image": "/data/local-files/?d=pool/c.jpg"}, "annotations": [], "predictions": []}]
    tasks = parse(LABEL_STUDIO_EXPORT, export, "ls.json", RUN_LABELS)
    assert tasks[0]["annotations"][0]["result"][0]["value"]["rotation"] == 12.5
    assert tasks[1]["annotations"][0]["was_cancelled"] is True


def test_a_json_min_record_passes():
    unannotated = {"image": "/data/local-files/?d=pool/b.jpg", "id": 6, "annotation_id": None}
    records = parse(JSON_MIN_EXPORT, [json_min(quality="good"), unannotated], "min.json", RUN_LABELS)
    assert records[0].label[0]["original_width"] == 200 and records[0].quality == "good"


def test_the_tasks_a_selection_writes_pass():
    box = labelstudio.box_result([10, 20, 30, 60], "car", 0.5, 100, 200)
    tasks = [labelstudio.task({"image": "/pool/a.jpg", "image_id": "a.jpg", "rank": 0, "score": None}, [box]),
             labelstudio.task({"image": "/pool/b.jpg", "image_id": "b.jpg", "rank": 1}, None)]
    parse(SELECTION_TASKS, tasks, "label_studio_tasks.json", RUN_LABELS)
    parse(SELECTION_CATEGORIES, {"images": [], "categories": [{"id": 1, "name": "car"}]}, "pseudo_labels.json")


# --- COCO / LVIS: one bad record per rule ----------------------------------------------------------

def _image(doc, **fields):
    doc["images"][0].update(fields)


def _annotation(doc, **fields):
    doc["annotations"][0].update(fields)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("categories"), "f.json: missing the 'categories' list of a COCO/LVIS file"),
    (lambda d: d.update(categories=[]), "f.json: categories: must not be empty, got []"),
    (lambda d: d.update(categories={"1": "car"}), "f.json: categories: must be a list, got {'1': 'car'}"),
    (lambda d: d["categories"][1].update(id=True), "f.json: categories[1] id: must be an integer, got True"),
    (lambda d: d["categories"][1].update(id=2 ** 63),
     "f.json: categories[1] id: out of range (a 64-bit integer), got 9223372036854775808"),
    (lambda d: d["categories"][1].pop("id"), "f.json: categories[1] id: required"),
    (lambda d: d["categories"][1].update(name=7), "f.json: category 2 name: must be a string, got 7"),
    (lambda d: d["categories"][1].update(frequency="rare"),
     "f.json: category 2 frequency: must be 'r', 'c' or 'f', got 'rare'"),
    (lambda d: d["categories"][1].update(id=1),
     "f.json: categories[1] id: duplicate category id 1 (also categories[0])"),
    (lambda d: d["categories"].append("bus"), "f.json: categories[2]: must be an object, got 'bus'"),
    (lambda d: _image(d, id=1.5), "f.json: images[0] id: must be a 64-bit integer or a string, got 1.5"),
    (lambda d: _image(d, id=None), "f.json: images[0] id: must be a 64-bit integer or a string, got None"),
    (lambda d: _image(d, width=0), "f.json: image 397133 width: must be > 0, got 0"),
    (lambda d: _image(d, height=2 ** 31), "f.json: image 397133 height: must be < 2147483648, got 2147483648"),
    (lambda d: _image(d, width=True), "f.json: image 397133 width: must be a number, got True"),
    (lambda d: _image(d, width="640"), "f.json: image 397133 width: must be a number, got '640'"),
    (lambda d: d["images"][1].update(id=397133), "f.json: images[1] id: duplicate image id 397133 (also images[0])"),
    (lambda d: d.update(images={}), "f.json: images: must be a list, got {}"),
    (lambda d: d["annotations"][0].pop("bbox"), "f.json: annotation 17 bbox: required"),
    (lambda d: _annotation(d, bbox=[1, 2, 0, 5]), "f.json: annotation 17 bbox[2]: must be > 0, got 0"),
    (lambda d: _annotation(d, bbox=[1, 2, 3, -5]), "f.json: annotation 17 bbox[3]: must be > 0, got -5"),
    (lambda d: _annotation(d, bbox=[float("nan"), 2, 3, 4]),
     "f.json: annotation 17 bbox[0]: must be a finite number, got nan"),
    (lambda d: _annotation(d, bbox=[1, "2", 3, 4]), "f.json: annotation 17 bbox[1]: must be a number, got '2'"),
    (lambda d: _annotation(d, bbox=[1, 2, 3]), "f.json: annotation 17 bbox: too short (no item [3]), got [1, 2, 3]"),
    (lambda d: _annotation(d, bbox=[1, 2, 3, 4, 5]),
     "f.json: annotation 17 bbox: must have at most 4 items, got [1, 2, 3, 4, 5]"),
    (lambda d: _annotation(d, bbox="1,2,3,4"), "f.json: annotation 17 bbox: must be a list, got '1,2,3,4'"),
    (lambda d: _annotation(d, category_id=False), "f.json: annotation 17 category_id: must be an integer, got False"),
    (lambda d: _annotation(d, image_id=[1]),
     "f.json: annotation 17 image_id: must be a 64-bit integer or a string, got [1]"),
    (lambda d: _annotation(d, iscrowd=2), "f.json: annotation 17 iscrowd: must be <= 1, got 2"),
    (lambda d: _annotation(d, category_id=99), "f.json: annotation 17 category_id: unknown category 99"),
    (lambda d: _annotation(d, image_id="000000397133.jpg"),
     "f.json: annotation 17 image_id: unknown image '000000397133.jpg'"),
    (lambda d: d["annotations"][1].pop("id") and d["annotations"][1].update(category_id=None),
     "f.json: annotations[1] category_id: must be an integer, got None"),
    (lambda d: d["annotations"].append(None), "f.json: annotations[2]: must be an object, got None"),
])
def test_a_bad_coco_record_is_one_line_naming_file_record_and_field(edit, message):
    assert refused(LABEL_DOCUMENT, edited(COCO, edit)) == message


def test_a_label_file_saved_with_a_byte_order_mark_loads(tmp_path):
    """Windows tools write UTF-8 with a BOM; json.loads refuses one, the label reader skips it."""
    import json

    from taast_ray.data.labels import load_labels

    path = tmp_path / "labels.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(COCO).encode())
    assert len(load_labels(path).images) == 2


def test_a_json_list_is_not_a_label_document():
    assert refused(LABEL_DOCUMENT, [1, 2]) == "f.json: missing the 'categories' list of a COCO/LVIS file"


def test_annotations_may_name_images_of_a_file_without_images():
    parse(LABEL_DOCUMENT, edited(COCO, lambda d: d.pop("images")), "f.json")


def test_values_are_cut_to_40_characters_and_only_the_first_defect_is_told():
    doc = edited(COCO, lambda d: (_annotation(d, bbox="x" * 500, category_id="also bad"), _image(d, width=-1)))
    message = refused(LABEL_DOCUMENT, doc)
    assert message == "f.json: image 397133 width: must be > 0, got -1"  # images come before annotations
    message = refused(LABEL_DOCUMENT, edited(COCO, lambda d: _annotation(d, id="a\nb" * 30, bbox="y" * 500)))
    assert message == ("f.json: annotation 'a\\nba\\nba\\nba\\nba\\nba\\nba\\nba\\nba\\nb... "
                       "bbox: must be a list, got 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...")
    assert gc.isenabled()  # the collector paused for the validation is back


# --- Label Studio's JSON export --------------------------------------------------------------------

def _value(**fields):
    return lambda e: e[0]["annotations"][0]["result"][0]["value"].update(fields)


RESULT = "f.json: task 5 annotations[0].result[0]"


@pytest.mark.parametrize("edit, message", [
    (lambda e: e[0].update(id="abc"), "f.json: tasks[0] id: must be an integer, got 'abc'"),
    (lambda e: e[0].pop("data"), "f.json: task 5 data: required"),
    (lambda e: e[0].update(data="pool/a.jpg"), "f.json: task 5 data: must be an object, got 'pool/a.jpg'"),
    (lambda e: e[0].update(annotations={}), "f.json: task 5 annotations: must be a list, got {}"),
    (lambda e: e[0]["annotations"][0].update(was_cancelled="no"),
     "f.json: task 5 annotations[0].was_cancelled: must be true or false, got 'no'"),
    (lambda e: e[0]["annotations"][0].update(result="none"),
     "f.json: task 5 annotations[0].result: must be a list, got 'none'"),
    (lambda e: e[0]["annotations"][0]["result"][0].pop("type"), f"{RESULT}.type: required"),
    (lambda e: e[0]["annotations"][0]["result"][0].update(value="oops"),
     f"{RESULT}.value: must be an object, got 'oops'"),
    (lambda e: e[0]["annotations"][0]["result"][0].update(original_width=0),
     f"{RESULT}.original_width: must be > 0, got 0"),
    (lambda e: e[0]["annotations"][0]["result"][0].update(from_name=["label"]),
     f"{RESULT}.from_name: must be a string, got ['label']"),
    (_value(x="10"), f"{RESULT}.value.x: must be a number, got '10'"),
    (_value(width=float("inf")), f"{RESULT}.value.width: must be a finite number, got inf"),
    (lambda e: e[0]["annotations"][0]["result"][0]["value"].pop("height"), f"{RESULT}.value.height: required"),
    (_value(rectanglelabels="car"), f"{RESULT}.value.rectanglelabels: must be a list, got 'car'"),
    (_value(rectanglelabels=["car", "bus"]),
     f"{RESULT}.value.rectanglelabels: a rectangle needs exactly one label, got ['car', 'bus']"),
    (_value(rectanglelabels=[]), f"{RESULT}.value.rectanglelabels: a rectangle needs exactly one label, got []"),
    (_value(rectanglelabels=["truck"]),
     f"{RESULT}.value.rectanglelabels: label 'truck' is not a category of this run (bus, car)"),
    (_value(rotation="x"), f"{RESULT}.value.rotation: must be a number, got 'x'"),
    (lambda e: e[0]["annotations"][0]["result"].append({"type": "choices", "value": ["good"]}),
     "f.json: task 5 annotations[0].result[1].value: must be an object, got ['good']"),
    (lambda e: e.append("task"), "f.json: tasks[1]: must be an object, got 'task'"),
])
def test_a_bad_label_studio_task_is_one_line_naming_file_task_and_field(edit, message):
    assert refused(LABEL_STUDIO_EXPORT, edited([ls_task(rect())], edit), RUN_LABELS) == message


def test_a_label_studio_export_is_a_list():
    assert refused(LABEL_STUDIO_EXPORT, {"tasks": []}) == \
        "f.json: a Label Studio export is a JSON list of tasks, got {'tasks': []}"


# --- JSON_MIN and a selection's own files -----------------------------------------------------------

@pytest.mark.parametrize("record, message", [
    (json_min(annotation_id="4"), "f.json: records[0] annotation_id: must be an integer, got '4'"),
    (json_min(id=True), "f.json: annotation 4 id: must be an integer, got True"),
    (json_min(was_cancelled=1), "f.json: annotation 4 was_cancelled: must be true or false, got 1"),
    (json_min(label=[{"x": 1, "y": None, "width": 5, "height": 5, "rectanglelabels": ["car"]}]),
     "f.json: annotation 4 label[0].y: must be a number, got None"),
    (json_min(label=[{"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["car"], "original_height": -1}]),
     "f.json: annotation 4 label[0].original_height: must be > 0, got -1"),
    (json_min(**{"my\nboxes": [{"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["truck"]}]}),
     "f.json: annotation 4 ['my\\nboxes'][0].rectanglelabels: label 'truck' is not a category of this run (bus, car)"),
])
def test_a_bad_json_min_record_is_one_line(record, message):
    assert refused(JSON_MIN_EXPORT, [record], RUN_LABELS) == message


@pytest.mark.parametrize("tasks, message", [
    ({"data": {}}, "f.json: not the Label Studio tasks a selection writes (a JSON list of tasks), got {'data': {}}"),
    ([{"data": {"image": "/pool/a.jpg"}}], "f.json: tasks[0] data.image_id: required"),
    ([{"data": {"image": None, "image_id": "a.jpg"}}], "f.json: tasks[0] data.image: must be a string, got None"),
    ([labelstudio.task({"image": "/p/a.jpg", "image_id": "a.jpg"},
                       [labelstudio.box_result([1, 1, 5, 5], "truck", 0.5, 10, 10)])],
     "f.json: tasks[0] predictions[0].result[0].value.rectanglelabels: label 'truck' is not a category of this run "
     "(bus, car)"),
])
def test_selection_tasks_that_taast_export_cannot_read(tasks, message):
    assert refused(SELECTION_TASKS, tasks, RUN_LABELS) == message


@pytest.mark.parametrize("pseudo, message", [
    ([], "f.json: not a selection's pseudo labels (an object with a 'categories' list), got []"),
    ({"categories": [{"id": 1}]}, "f.json: category 1 name: required"),
    ({"categories": [{"id": 1, "name": "car"}, {"id": 1, "name": "bus"}]},
     "f.json: categories[1] id: duplicate category id 1 (also categories[0])"),
])
def test_selection_categories_that_taast_export_cannot_read(pseudo, message):
    assert refused(SELECTION_CATEGORIES, pseudo) == message
