"""A team's own data, end to end (issues 16, 30): a YOLO-layout dataset of 10 classes and the
team's own detector, a YOLOv8n the test trains on it with Ultralytics and saves as Ultralytics
does (`last.pt`) → `taast import yolo` → `taast run` in production mode for 2 cycles on a local
Ray, starting from that .pt (no warm-up). At the first stop the tasks go to a real Label Studio
server (tests/labelstudio_server.py: a project made from the exported labelling config, images
served from local files, the true boxes annotated through its REST API, its JSON export
ingested), and the run resumes; at the second a COCO file comes back. Both cycles train on
exactly L ∪ Q (∪ P), and the second cycle never reselects an image of the first."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from taast_ray.cli import main
from taast_ray.data.synth import make_synthetic_dataset
from tests.sockets import assert_loopback_only, watch_listeners

pytestmark = pytest.mark.slow
LABELLED = 40
CLASSES = 10
MODEL = {"selection": {"budget": 6, "seed": 5, "det_conf": 0.01},
         "model": {"embedder": "taast-tiny-ViT", "embedder_weights": "none"},
         "train": {"imgsz": 64, "batch": 8, "workers": 1, "warmup_epochs": 0, "epochs": 1,
                   "optimizer": "AdamW", "lr0": 0.002},
         "protocol": {"cycles": 2},
         "ray": {"detector_actors_max": 1, "embedder_actors_max": 1, "batch_size": 16}}


def yolo_dataset(root: Path) -> tuple[Path, dict]:
    """~40 labelled train images, the other ~60 without label files (the pool), a labelled val;
    returns data.yaml and the truth of every train image by its path under the YOLO root."""
    make_synthetic_dataset(root, images=150, classes=CLASSES, seed=3, image_size=64, zipf=0.3,
                           eval_min_instances=0)
    truth = json.loads((root / "annotations" / "train.json").read_text())
    labels = sorted((root / "yolo" / "labels" / "train").glob("*.txt"))
    for f in labels[LABELLED:]:
        f.unlink()
    by_path = {f"images/train/{Path(i['file_name']).name}": i for i in truth["images"]}
    boxes = {}
    for a in truth["annotations"]:
        boxes.setdefault(a["image_id"], []).append(a)
    names = {c["id"]: c["name"] for c in truth["categories"]}
    return root / "yolo" / "dataset.yaml", {"images": by_path, "boxes": boxes, "names": names,
                                            "pool": len(labels) - LABELLED}


def coco_export(selection: Path, truth: dict, categories: list[dict]) -> dict:
    """A COCO file of the selected images named by their URI (absolute path), its own image ids."""
    table = pq.read_table(selection)
    images, annotations = [], []
    for key, uri in zip(table.column("image_id").to_pylist(), table.column("uri").to_pylist()):
        img = truth["images"][key]
        images.append({"id": 5000 + img["id"], "file_name": uri, "width": img["width"], "height": img["height"]})
        for a in truth["boxes"].get(img["id"], []):
            annotations.append({**a, "id": len(annotations) + 1, "image_id": 5000 + img["id"]})
    return {"images": images, "annotations": annotations, "categories": categories}


def keys(doc: dict) -> set[str]:
    return {i["taast_image_id"] for i in doc["images"]}


def selected(run: Path, t: int) -> set[str]:
    return set(pq.read_table(run / f"cycle_{t}" / "select" / "selection.parquet").column("image_id").to_pylist())


def own_detector(folder: Path, data_yaml: Path) -> Path:
    """The team's detector: a YOLOv8n trained by Ultralytics on their labelled images, saved as
    Ultralytics saves it."""
    from ultralytics import YOLO

    YOLO("yolov8n.yaml").train(data=str(data_yaml), epochs=1, imgsz=64, batch=8, workers=0, device="cpu",
                               project=str(folder), name="own", plots=False, val=False, verbose=False,
                               exist_ok=True)
    return folder / "own" / "weights" / "last.pt"


def annotate_in_label_studio(label_studio, select_dir: Path, truth: dict, tmp_path: Path) -> Path:
    """The annotators' round: tasks and config exported for Label Studio's local files, a project
    made from them, the true boxes entered through the REST API, the JSON export saved."""
    from tests.labelstudio_server import call, new_project, project_tasks, rect

    url, root = label_studio
    tasks_file = tmp_path / "ls" / "tasks.json"
    tasks_file.parent.mkdir()
    assert main(["export", str(select_dir), "--format", "labelstudio", "--out", str(tasks_file),
                 "--document-root", str(root)]) == 0
    project = new_project(url, (tasks_file.parent / "label_config.xml").read_text(), root / "production")
    call(url, "POST", f"/api/projects/{project}/import", json.loads(tasks_file.read_text()))
    for task in project_tasks(url, project):
        img = truth["images"][task["data"]["image_id"]]
        assert call(url, "GET", task["data"]["image"], raw=True)  # served
        call(url, "POST", f"/api/tasks/{task['id']}/annotations", {"was_cancelled": False, "result": [
            rect(a["bbox"], truth["names"][a["category_id"]], img["width"], img["height"])
            for a in truth["boxes"].get(img["id"], [])]})
    export = tmp_path / "label_studio_export.json"
    export.write_bytes(call(url, "GET", f"/api/projects/{project}/export?exportType=JSON", raw=True))
    return export


def test_yolo_folder_to_two_production_cycles(tmp_path, ray_local, label_studio, capsys):
    data_yaml, truth = yolo_dataset(label_studio[1] / "production")  # under the server's document root
    weights = own_detector(tmp_path / "train", data_yaml)
    imported = tmp_path / "imported"
    assert main(["import", "yolo", str(data_yaml), "--out", str(imported)]) == 0
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load((imported / "taast.yaml").read_text()),
                                      **{**MODEL, "model": {**MODEL["model"], "weights": str(weights)}}}))
    run = tmp_path / "run"
    argv = ["run", "--config", str(config), "--out", str(run)]

    assert main(argv) == 3  # cycle 1 waits for annotators and says how to go on
    out = capsys.readouterr().out
    assert not (run / "cycle_0").exists()  # the team's own .pt has L's 10 classes: no warm-up
    assert f"taast ingest --run {run}" in out and f"--out {run} --resume" in out
    l0 = json.loads((run / "data" / "labels_L0.json").read_text())
    assert len(l0["images"]) == LABELLED
    pool = pq.read_table(run / "data" / "pool.parquet").column("image_id").to_pylist()
    assert len(pool) == truth["pool"] and not set(pool) & keys(l0)
    q1 = selected(run, 1)
    assert len(q1) == 6 and q1 <= set(pool)

    export = annotate_in_label_studio(label_studio, run / "cycle_1" / "select", truth, tmp_path)
    assert main(["ingest", "--run", str(run), "--labels", str(export)]) == 0
    new = json.loads((run / "cycle_1" / "labels_new.json").read_text())
    want = sum(len(truth["boxes"].get(truth["images"][k]["id"], [])) for k in q1)
    assert keys(new) == q1 and len(new["annotations"]) == want

    with watch_listeners() as seen:
        assert main(argv + ["--resume"]) == 3  # cycle 1 trained; cycle 2 waits
    assert_loopback_only(seen, "RayTrainWo")  # issue 31: Ray Train's workers too, on loopback only
    q2 = selected(run, 2)
    assert len(q2) == 6 and not q2 & q1 and not q2 & keys(l0)
    coco = tmp_path / "coco_export.json"
    coco.write_text(json.dumps(coco_export(run / "cycle_2" / "select" / "selection.parquet", truth,
                                           l0["categories"])))
    assert main(["ingest", "--run", str(run), "--labels", str(coco)]) == 0
    assert main(argv + ["--resume"]) == 0

    for t, manual in ((1, keys(l0) | q1), (2, keys(l0) | q1 | q2)):
        cycle = run / f"cycle_{t}"
        labels = json.loads((cycle / "labels.json").read_text())
        assert keys(labels) == manual and len({i["id"] for i in labels["images"]}) == len(manual)
        train_set = json.loads((cycle / "train_set.json").read_text())
        pseudo = keys(json.loads((cycle / "select" / "pseudo_labels.json").read_text()))
        assert keys(train_set) - manual <= pseudo and manual <= keys(train_set)
        assert len(list((cycle / "yolo" / "labels" / "train").glob("*.txt"))) == len(train_set["images"])
        metrics = json.loads((cycle / "metrics.json").read_text())
        assert metrics["frequency_source"] == "labelled training set"
    # the second cycle's annotators' boxes are the truth, in pixels of the training images
    by_key = {i["taast_image_id"]: i["id"] for i in labels["images"]}
    for key in q2:
        got = sorted(tuple(round(v, 3) for v in a["bbox"]) for a in labels["annotations"]
                     if a["image_id"] == by_key[key])
        true = sorted(tuple(round(float(v), 3) for v in a["bbox"])
                      for a in truth["boxes"].get(truth["images"][key]["id"], []))
        assert got == true
    test = json.loads((run / "test_metrics.json").read_text())  # the imported test split, once
    assert test["frequency_source"] == "labelled training set"
    rows = json.loads((run / "cycles.json").read_text())
    assert [r["labelled_images"] for r in rows] == [LABELLED + 6, LABELLED + 12]
