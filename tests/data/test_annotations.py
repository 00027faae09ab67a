"""What annotators send back → COCO for the selected images: Label Studio exports and COCO."""
import pytest

from taast_ray.data.annotations import coco_to_selected
from taast_ray.data.labelstudio import label_studio_to_coco
from taast_ray.data.labels import labels_from_dict
from taast_ray.errors import InputError

CATS = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
SELECTED = {"a/1.jpg": {"uri": "/data/a/1.jpg", "width": 200, "height": 100},
            "b/2.jpg": {"uri": "/data/b/2.jpg", "width": 640, "height": 480},
            "c/3.jpg": {"uri": "/data/c/3.jpg", "width": 50, "height": 50}}


def no_size(key):
    raise AssertionError("sizes are known")


def rect(x, y, w, h, label="car", rotation=0):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                      "rectanglelabels": [label]}}


def task(data, *results, cancelled=False):
    return {"id": 7, "data": data, "annotations": [{"result": list(results), "was_cancelled": cancelled}]}


def test_percent_boxes_become_pixels():
    tasks = [task({"image_id": "a/1.jpg", "image": "/data/a/1.jpg"}, rect(10, 20, 30, 40),
                  rect(0, 0, 100, 100, "person")),
             task({"image": "/data/b/2.jpg"}, rect(50, 50, 25, 25, "person")),  # matched by its URI
             task({"image": "/data/c/3.jpg"})]  # annotated, no objects
    doc, missing = label_studio_to_coco(tasks, SELECTED, CATS, "ls.json", no_size)
    assert missing == []
    assert [(i["id"], i["taast_image_id"], i["width"]) for i in doc["images"]] == \
        [(1, "a/1.jpg", 200), (2, "b/2.jpg", 640), (3, "c/3.jpg", 50)]
    # 200 x 100: x 10 % → 20 px, y 20 % → 20 px, w 30 % → 60 px, h 40 % → 40 px
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in doc["annotations"]] == [
        (1, 1, [20.0, 20.0, 60.0, 40.0]), (1, 2, [0.0, 0.0, 200.0, 100.0]),
        (2, 2, [320.0, 240.0, 160.0, 120.0])]
    labels_from_dict(doc, "converted")  # a valid COCO file


def test_unlabelled_tasks_are_missing_skipped_ones_go_back_to_the_pool():
    tasks = [task({"image_id": "a/1.jpg"}, rect(10, 10, 10, 10)),
             task({"image_id": "b/2.jpg"}, rect(10, 10, 10, 10), cancelled=True),  # "Skip"
             {"id": 9, "data": {"image_id": "c/3.jpg"}, "annotations": []}]
    doc, missing = label_studio_to_coco(tasks, SELECTED, CATS, "ls.json", no_size)
    assert [i["taast_image_id"] for i in doc["images"]] == ["a/1.jpg"]
    assert missing == ["c/3.jpg"] and doc["info"]["skipped"] == ["b/2.jpg"]


def test_a_project_holding_other_cycles_tasks_ingests_this_cycles():
    tasks = [task({"image_id": "old/9.jpg", "image": "/data/old/9.jpg"}, rect(1, 1, 5, 5)),  # cycle 1's
             task({"image_id": "a/1.jpg"}, rect(10, 20, 30, 40)),
             task({"image": "/data/local-files/?d=b/2.jpg"}, rect(0, 0, 10, 10, "person")),
             task({"image_id": "never.jpg"})]
    doc, missing = label_studio_to_coco(tasks, SELECTED, CATS, "ls.json", no_size)
    assert [i["taast_image_id"] for i in doc["images"]] == ["a/1.jpg", "b/2.jpg"] and missing == ["c/3.jpg"]
    assert doc["info"]["not_selected"] == 2 and len(doc["annotations"]) == 2


def json_min(task_id, data, *boxes, annotation_id=1, updated_at=None):
    """A record as label-studio-sdk's convert_to_json_min writes it: data at the top level, each
    control's values under its name, the type key removed."""
    record = {**data, "id": task_id, "annotator": 1, "annotation_id": annotation_id,
              "created_at": "2026-12-01T10:00:00Z", "updated_at": updated_at or "2026-12-01T10:00:00Z",
              "lead_time": 3.2}
    if boxes:
        record["label"] = [{**rect(*b)["value"], "original_width": 200, "original_height": 100} for b in boxes]
    return record


def test_json_min_exports_read_like_the_full_export():
    full = [task({"image_id": "a/1.jpg", "image": "/data/a/1.jpg"}, rect(10, 20, 30, 40),
                 rect(0, 0, 100, 100, "person")),
            task({"image": "/data/b/2.jpg"}, rect(50, 50, 25, 25, "person")),
            task({"image": "/data/c/3.jpg"})]
    minimal = [json_min(1, {"image_id": "a/1.jpg", "image": "/data/a/1.jpg"}, (10, 20, 30, 40),
                        (0, 0, 100, 100, "person")),
               json_min(2, {"image": "/data/b/2.jpg"}, (50, 50, 25, 25, "person")),
               json_min(3, {"image": "/data/c/3.jpg"})]  # annotated, no objects
    assert label_studio_to_coco(minimal, SELECTED, CATS, "min.json", no_size) == \
        label_studio_to_coco(full, SELECTED, CATS, "ls.json", no_size)


def test_json_min_unannotated_tasks_are_missing_and_the_latest_of_two_counts():
    minimal = [json_min(1, {"image_id": "a/1.jpg"}, (10, 10, 10, 10, "car"), updated_at="2026-12-01T12:00:00Z"),
               json_min(1, {"image_id": "a/1.jpg"}, (10, 10, 10, 10, "person"), annotation_id=2,
                        updated_at="2026-12-02T12:00:00Z"),
               json_min(2, {"image_id": "b/2.jpg"}, annotation_id=None)]
    doc, missing = label_studio_to_coco(minimal, SELECTED, CATS, "min.json", no_size)
    assert [a["category_id"] for a in doc["annotations"]] == [2]  # person, the later annotation
    assert missing == ["b/2.jpg", "c/3.jpg"]
    with pytest.raises(InputError, match="label 'bus' is not a category"):
        label_studio_to_coco([json_min(1, {"image_id": "a/1.jpg"}, (1, 1, 5, 5, "bus"))], SELECTED, CATS,
                             "min.json", no_size)


def test_latest_annotation_counts():
    t = {"data": {"image_id": "a/1.jpg"}, "annotations": [
        {"result": [rect(10, 10, 10, 10, "person")], "updated_at": "2026-12-02T12:00:00Z"},
        {"result": [rect(10, 10, 10, 10, "car")], "updated_at": "2026-12-01T12:00:00Z"}]}
    doc, _ = label_studio_to_coco([t], SELECTED, CATS, "ls.json", no_size)
    assert [a["category_id"] for a in doc["annotations"]] == [2]


@pytest.mark.parametrize("tasks, message", [
    ([task({"image_id": "a/1.jpg"}, rect(1, 1, 5, 5, "bus"))], "label 'bus' is not a category"),
    ([task({"image_id": "a/1.jpg"}, rect(1, 1, 5, 5, rotation=30))], "rotated"),
    ([task({"image_id": "a/1.jpg"}, rect(120, 1, 5, 5))], "no area inside the 200x100 image"),
    ([task({"image_id": "a/1.jpg"}), task({"image": "/data/a/1.jpg"})], "is also in task 7"),
    ({"tasks": []}, "JSON list of tasks"),
])
def test_bad_label_studio_exports(tasks, message):
    with pytest.raises(InputError, match=message) as err:
        label_studio_to_coco(tasks, SELECTED, CATS, "ls.json", no_size)
    assert str(err.value).startswith("ls.json")


def coco(images, annotations, categories=CATS):
    return labels_from_dict({"images": images, "annotations": annotations, "categories": categories}, "c.json")


def test_coco_matched_by_file_name_uri_and_base_name_categories_by_name():
    theirs = [{"id": 0, "name": "person"}, {"id": 1, "name": "car"}]  # Label Studio's COCO export numbers from 0
    labels = coco([{"id": 10, "file_name": "a/1.jpg"}, {"id": 11, "file_name": "/data/b/2.jpg"},
                   {"id": 12, "file_name": "upload/3.jpg", "width": 50, "height": 50}],
                  [{"id": 1, "image_id": 11, "category_id": 0, "bbox": [1, 2, 3, 4]},
                   {"id": 2, "image_id": 12, "category_id": 1, "bbox": [0, 0, 10, 10]}], theirs)
    doc, missing = coco_to_selected(labels, SELECTED, CATS, "c.json", no_size)
    assert missing == [] and [i["taast_image_id"] for i in doc["images"]] == ["a/1.jpg", "b/2.jpg", "c/3.jpg"]
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in doc["annotations"]] == \
        [(2, 2, [1.0, 2.0, 3.0, 4.0]), (3, 1, [0.0, 0.0, 10.0, 10.0])]


def test_coco_of_several_cycles_takes_this_cycles_images():
    labels = coco([{"id": 1, "file_name": "old/9.jpg"}, {"id": 2, "file_name": "a/1.jpg"}],
                  [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
                   {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10]}])
    doc, missing = coco_to_selected(labels, SELECTED, CATS, "c.json", no_size)
    assert [i["taast_image_id"] for i in doc["images"]] == ["a/1.jpg"] and missing == ["b/2.jpg", "c/3.jpg"]
    assert [a["category_id"] for a in doc["annotations"]] == [2] and doc["info"]["not_selected"] == 1


def test_coco_by_id_and_its_errors():
    selected = {"5": {"uri": "/x/5.jpg", "width": 10, "height": 10}, "6": {"uri": "/x/6.jpg", "width": 10, "height": 10}}
    doc, missing = coco_to_selected(coco([{"id": 5, "file_name": "whatever.jpg"}], []), selected, CATS, "c.json", no_size)
    assert [i["taast_image_id"] for i in doc["images"]] == ["5"] and missing == ["6"]
    with pytest.raises(InputError, match="is 20x10 in the file but 10x10 on disk"):
        coco_to_selected(coco([{"id": 5, "file_name": "a", "width": 20, "height": 10}], []), selected, CATS,
                         "c.json", no_size)
    with pytest.raises(InputError, match="category 3 .* is not a category of this run"):
        coco_to_selected(coco([{"id": 5}], [], [{"id": 3, "name": "bus"}]), selected, CATS, "c.json", no_size)
