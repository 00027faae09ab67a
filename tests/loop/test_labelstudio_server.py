"""A real Label Studio server (PyPI label-studio 1.23.2, in a venv of its own, on loopback) and a
production run waiting for its annotators: the selection's tasks and labelling config are taken as
they are, every image is served, the predictions are stored, annotations made through the REST
API come back in Label Studio's JSON, JSON_MIN, COCO (zip) and YOLO (zip) exports, and each is
ingested with the true boxes; a project kept across two cycles, exported whole, ingests each
cycle's own images. The run's cycles are written by hand around real selections (no training:
tests/loop/test_production.py drives a trained production run through the same server and
resumes it); the server is real (tests/labelstudio_server.py: skipped, saying why, only where the
package cannot be installed).
"""
import io
import json
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray.cli import main
from taast_ray.config import config_from_dict, load_config, save_config
from taast_ray.data.synth import make_synthetic_dataset
from taast_ray.io import mark_done
from taast_ray.loop.ingest import ingest_labels
from taast_ray.loop.layout import RunLayout
from taast_ray.pipeline.precomputed import select_from_detections
from tests.labelstudio_server import call, new_project, project_tasks, rect

pytestmark = pytest.mark.slow
BUDGET = 5


def waiting_run(tmp_path, root):
    """A production run on the synthetic images under the document root, and a selector: each call
    selects BUDGET pool images not selected before (a real `taast select --detections` pass on
    detections made from the truth) into the next cycle, which then waits for annotators."""
    make_synthetic_dataset(root / "synth", images=40, classes=3, seed=4, image_size=64, zipf=0.3,
                           eval_min_instances=0)
    images = root / "synth" / "images"
    truth = json.loads((root / "synth" / "annotations" / "train.json").read_text())
    layout = RunLayout(tmp_path / "run")
    layout.root.mkdir()
    cats = truth["categories"]
    save_config(config_from_dict({"data": {"labelled": str(tmp_path / "L.json"), "pool": str(images / "train"),
                                           "images": str(images)}}), layout.config)
    l0 = truth["images"][:8]
    layout.labels_l0.parent.mkdir(parents=True)
    layout.labels_l0.write_text(json.dumps({
        "images": [{**i, "taast_image_id": i["file_name"]} for i in l0], "categories": cats,
        "annotations": [a for a in truth["annotations"] if a["image_id"] in {i["id"] for i in l0}]}))
    pool = truth["images"][8:]
    boxes = {}
    for a in truth["annotations"]:
        boxes.setdefault(a["image_id"], []).append(a)
    rng = np.random.default_rng(0)
    rows = []
    for img in pool:  # the detector's output: the true boxes with soft scores
        bb = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
              for a in boxes.get(img["id"], [])]
        rows.append({"image_id": img["file_name"], "uri": str(images / img["file_name"]), "width": 64, "height": 64,
                     "boxes": bb, "scores": [list(rng.dirichlet(np.ones(len(cats))) * 0.9) for _ in bb]})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "detections.parquet")
    pq.write_table(pa.table({"image_id": [r["image_id"] for r in rows], "uri": [r["uri"] for r in rows]}),
                   layout.pool)
    taken: set[str] = set()

    def select(t: int) -> list[str]:
        cycle = layout.cycle(t)
        left = [r for r in rows if r["image_id"] not in taken]
        pq.write_table(pa.Table.from_pylist(left), tmp_path / f"left_{t}.parquet")
        cfg = load_config(None, {"selection": {"strategy": "entropy", "budget": BUDGET}})
        select_from_detections(cfg, tmp_path / f"left_{t}.parquet", layout.labels_l0, cycle.select)
        mark_done(cycle.dir / "_markers", "select")
        keys = pq.read_table(cycle.selection).column("image_id").to_pylist()
        taken.update(keys)
        return keys
    return layout, select, truth, boxes, images


def true_results(task, truth, boxes):
    img = next(i for i in truth["images"] if i["file_name"] == task["data"]["image_id"])
    names = {c["id"]: c["name"] for c in truth["categories"]}
    return [rect(a["bbox"], names[a["category_id"]], 64, 64) for a in boxes.get(img["id"], [])]


def boxes_of(doc) -> dict:
    by_id = {i["id"]: i["taast_image_id"] for i in doc["images"]}
    out = {}
    for a in doc["annotations"]:
        out.setdefault(by_id[a["image_id"]], []).append((a["category_id"], *(round(v, 2) for v in a["bbox"])))
    return {k: sorted(v) for k, v in out.items()}


def test_a_real_label_studio_round_trip_over_two_cycles(label_studio, tmp_path, capsys):
    url, root = label_studio
    layout, select, truth, boxes, images = waiting_run(tmp_path, root)
    q1 = select(1)
    tasks_file = tmp_path / "cycle1" / "tasks.json"
    tasks_file.parent.mkdir()
    assert main(["export", str(layout.cycle(1).select), "--format", "labelstudio", "--out", str(tasks_file),
                 "--document-root", str(root)]) == 0
    assert "images referenced as local-files" in capsys.readouterr().out
    config = (tasks_file.parent / "label_config.xml").read_text()
    project = new_project(url, config, images)
    imported = call(url, "POST", f"/api/projects/{project}/import", json.loads(tasks_file.read_text()))
    sent = json.loads(tasks_file.read_text())
    assert imported["task_count"] == BUDGET
    assert imported["prediction_count"] == sum(1 for t in sent if t.get("predictions"))

    tasks = project_tasks(url, project)
    for task in tasks:  # every image is served, and is the file the selection named
        served = call(url, "GET", task["data"]["image"], raw=True)
        assert served == (images / task["data"]["image_id"]).read_bytes()
    # the predictions show in a project made from our config: stored against its controls
    stored = call(url, "GET", f"/api/predictions?task={tasks[0]['id']}")
    assert all(r["from_name"] == "label" and r["to_name"] == "image" for p in stored for r in p["result"])
    skipped = tasks[-1]
    for task in tasks:
        call(url, "POST", f"/api/tasks/{task['id']}/annotations",
             {"result": [] if task is skipped else true_results(task, truth, boxes), "was_cancelled": task is skipped})
    want = {k: sorted((a["category_id"], *(round(float(v), 2) for v in a["bbox"]))
                      for a in boxes.get(next(i["id"] for i in truth["images"] if i["file_name"] == k), []))
            for k in q1 if k != skipped["data"]["image_id"]}
    results = {}
    for fmt in ("JSON", "JSON_MIN", "COCO", "YOLO"):
        data = call(url, "GET", f"/api/projects/{project}/export?exportType={fmt}", raw=True)
        path = tmp_path / f"export_{fmt}{'.zip' if zipfile.is_zipfile(io.BytesIO(data)) else '.json'}"
        path.write_bytes(data)
        # Label Studio's JSON_MIN, COCO and YOLO leave the skipped task out: missing there, --partial
        new = json.loads(ingest_labels(layout.root, path, partial=fmt != "JSON").read_text())
        results[fmt] = new
        got = boxes_of(new)
        assert {k for k in q1 if k != skipped["data"]["image_id"]} == {i["taast_image_id"] for i in new["images"]}
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}, fmt
    assert results["JSON"]["info"]["skipped"] == [skipped["data"]["image_id"]]
    record = json.loads(layout.cycle(1).ingest_record.read_text())  # the last, YOLO's
    assert record["missing"] == [skipped["data"]["image_id"]]

    # cycle 2 in the same project: the whole project's export gives each cycle its own images
    mark_done(layout.cycle(1).dir / "_markers", "annotate")
    q2 = select(2)
    assert not set(q2) & set(q1)
    out2 = tmp_path / "cycle2" / "tasks.json"
    out2.parent.mkdir()
    assert main(["export", str(layout.cycle(2).select), "--format", "labelstudio", "--out", str(out2),
                 "--document-root", str(root)]) == 0
    call(url, "POST", f"/api/projects/{project}/import", json.loads(out2.read_text()))
    for task in project_tasks(url, project):
        if task["data"]["image_id"] in q2:
            call(url, "POST", f"/api/tasks/{task['id']}/annotations",
                 {"result": true_results(task, truth, boxes), "was_cancelled": False})
    whole = tmp_path / "project_all.json"
    whole.write_bytes(call(url, "GET", f"/api/projects/{project}/export?exportType=JSON", raw=True))
    assert main(["ingest", "--run", str(layout.root), "--labels", str(whole)]) == 0
    assert f"{BUDGET} other images in the file" in capsys.readouterr().out  # cycle 1's tasks, left out
    new = json.loads(layout.cycle(2).labels_new.read_text())
    assert {i["taast_image_id"] for i in new["images"]} == set(q2)
