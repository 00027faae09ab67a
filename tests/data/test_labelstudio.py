"""The Label Studio format's one module: tasks out, the labelling config they fit, our own tasks
read back."""
import xml.etree.ElementTree as ET

import pytest

from taast_ray.data import labelstudio


def test_the_labelling_config_names_the_tasks_controls_and_every_category():
    names = ["car", "traffic light", 'odd "quoted" & <sharp>']
    root = ET.fromstring(labelstudio.label_config(names))
    image, = root.iter("Image")
    boxes, = root.iter("RectangleLabels")
    result = labelstudio.box_result([10, 20, 30, 60], "car", 0.5, 100, 200)
    assert image.get("name") == result["to_name"] == boxes.get("toName")
    assert boxes.get("name") == result["from_name"] and result["type"] == "rectanglelabels"
    assert image.get("value") == "$image"
    assert [label.get("value") for label in boxes.iter("Label")] == names


def test_a_box_goes_out_in_percent_and_comes_back_in_pixels():
    result = labelstudio.box_result([10, 20, 30, 60], "car", 0.5, 100, 200)
    assert result["value"] == {"x": 10.0, "y": 10.0, "width": 20.0, "height": 20.0, "rectanglelabels": ["car"]}
    task = labelstudio.task({"image": "a.jpg"}, [result])
    assert labelstudio.recorded_size(task) == (100, 200)
    (label, bbox, score), = labelstudio.task_boxes(task, 100, 200)
    assert label == "car" and bbox == pytest.approx([10, 20, 20, 40]) and score == 0.5
    assert "predictions" not in labelstudio.task({"image": "a.jpg"}, None)
