"""`taast ingest` in a production run: partial labels are refused unless --partial, and then the
missing images go back to the next cycle's pool. The run directory is written by hand (no Ray)."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taast_ray.cli import main
from taast_ray.config import config_from_dict, save_config
from taast_ray.errors import InputError
from taast_ray.io import mark_done
from taast_ray.loop.ingest import ingest_labels
from taast_ray.loop.layout import RunLayout
from taast_ray.loop.production import image_key, renumbered
from taast_ray.loop.select import write_cycle_pool

CATS = [{"id": 1, "name": "car"}]


def waiting_run(tmp_path):
    """A production run whose cycle 1 selected three pool images and waits for their labels."""
    root, layout = tmp_path / "images", RunLayout(tmp_path / "run")
    keys = ["pool/a.jpg", "pool/b.jpg", "pool/c.jpg"]
    for key in keys + ["l/x.jpg", "pool/d.jpg"]:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 50)).save(root / key)
    layout.root.mkdir()
    save_config(config_from_dict({"data": {"labelled": "L.json", "pool": str(root / "pool"), "images": str(root)}}),
                layout.config)
    l0 = {"images": [{"id": 1, "file_name": "l/x.jpg", "width": 100, "height": 50, "taast_image_id": "l/x.jpg"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}], "categories": CATS}
    layout.labels_l0.parent.mkdir(parents=True)
    layout.labels_l0.write_text(json.dumps(l0))
    uris = [str(root / k) for k in keys + ["pool/d.jpg"]]
    pq.write_table(pa.table({"image_id": keys + ["pool/d.jpg"], "uri": uris}), layout.pool)
    cycle = layout.cycle(1)
    cycle.select.mkdir(parents=True)
    pq.write_table(pa.table({"image_id": keys, "rank": [0, 1, 2], "uri": uris[:3]}), cycle.selection)
    mark_done(cycle.dir / "_markers", "select")
    return layout, keys


def export(tasks):
    return [{"id": n, "data": {"image_id": k, "image": f"/somewhere/{k}"},
             "annotations": [{"result": [{"type": "rectanglelabels", "value": {
                 "x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["car"]}}]}]}
            for n, k in enumerate(tasks)]


def test_partial_ingest_is_refused_with_the_count(tmp_path, capsys):
    layout, keys = waiting_run(tmp_path)
    labels = tmp_path / "ls.json"
    labels.write_text(json.dumps(export(keys[:2])))
    assert main(["ingest", "--run", str(layout.root), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err.strip()
    assert "labels for 1 of the 3 selected images are missing (e.g. 'pool/c.jpg')" in err and "--partial" in err
    assert len(err.splitlines()) == 1 and not layout.cycle(1).labels_new.exists()


def test_partial_ingest_returns_the_missing_images_to_the_pool(tmp_path):
    layout, keys = waiting_run(tmp_path)
    labels = tmp_path / "ls.json"
    labels.write_text(json.dumps(export(keys[:2])))
    path = ingest_labels(layout.root, labels, partial=True)
    new = json.loads(path.read_text())
    assert [i["taast_image_id"] for i in new["images"]] == keys[:2]
    assert new["annotations"][0]["bbox"] == [10.0, 5.0, 20.0, 10.0]  # 100 x 50 px
    assert json.loads((path.parent / "ingest.json").read_text())["missing"] == ["pool/c.jpg"]
    base = json.loads(layout.labels_l0.read_text())
    merged = renumbered(base, new, {}, tmp_path / "images", tmp_path / "cache")
    assert [(i["id"], i["file_name"]) for i in merged["images"]] == [(2, "pool/a.jpg"), (3, "pool/b.jpg")]
    labelled = {image_key(i) for i in base["images"] + merged["images"]}
    write_cycle_pool(layout.pool, labelled, tmp_path / "next_pool.parquet")
    assert pq.read_table(tmp_path / "next_pool.parquet").column("image_id").to_pylist() == ["pool/c.jpg", "pool/d.jpg"]


def test_labels_of_no_selected_image(tmp_path):
    layout, keys = waiting_run(tmp_path)
    labels = tmp_path / "c.json"
    labels.write_text(json.dumps({"images": [{"id": 1, "file_name": "pool/d.jpg"}], "annotations": [],
                                  "categories": CATS}))
    with pytest.raises(InputError, match="no image selected in cycle_1 is labelled in it .1 of its images are "
                                         "not this cycle's selection"):
        ingest_labels(layout.root, labels, partial=True)


def test_resume_ingests_labels_left_in_the_cycle_folder(tmp_path):
    from taast_ray.loop.layout import DROPPED_LABELS
    from taast_ray.loop.production import AwaitingAnnotation, await_labels

    layout, keys = waiting_run(tmp_path)
    cycle = layout.cycle(1)
    with pytest.raises(AwaitingAnnotation) as stop:
        await_labels(cycle, layout.root, resume=True)
    assert f"taast ingest --run {layout.root} --labels" in str(stop.value)
    assert f"taast run --config {layout.config} --out {layout.root} --resume" in str(stop.value)
    (cycle.dir / DROPPED_LABELS).write_text(json.dumps(export(keys)))
    await_labels(cycle, layout.root, resume=True)
    assert cycle.done("annotate") and len(json.loads(cycle.labels_new.read_text())["images"]) == 3


def test_skipped_tasks_go_back_to_the_pool_without_partial(tmp_path, capsys):
    layout, keys = waiting_run(tmp_path)
    tasks = export(keys)
    tasks[1]["annotations"][0]["was_cancelled"] = True  # the annotator pressed Skip
    tasks.append(export(["pool/d.jpg"])[0])  # a task of another cycle in the same project
    labels = tmp_path / "ls.json"
    labels.write_text(json.dumps(tasks))
    assert main(["ingest", "--run", str(layout.root), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "2 images (2 boxes)" in out and "1 returned to the pool (1 skipped by the annotators)" in out
    assert "1 other images in the file" in out
    record = json.loads(layout.cycle(1).ingest_record.read_text())
    assert record["skipped"] == ["pool/b.jpg"] and record["missing"] == [] and record["not_selected"] == 1


def _zip(path, files: dict):
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def test_label_studio_coco_zip_is_read_as_it_comes(tmp_path):
    layout, keys = waiting_run(tmp_path)
    result = {"images": [{"id": 0, "file_name": f"images/{k.split('/')[1]}", "width": 100, "height": 50}
                         for k in keys],
              "categories": [{"id": 0, "name": "car"}],
              "annotations": [{"id": 0, "image_id": 0, "category_id": 0, "bbox": [10, 5, 20, 10]}]}
    for n, img in enumerate(result["images"]):
        img["id"] = n
    zipped = _zip(tmp_path / "project-1-coco.zip", {"result.json": json.dumps(result), "images/a.jpg": "x"})
    new = json.loads(ingest_labels(layout.root, zipped).read_text())
    assert [i["taast_image_id"] for i in new["images"]] == keys
    assert [(a["image_id"], a["bbox"]) for a in new["annotations"]] == [(1, [10.0, 5.0, 20.0, 10.0])]


def test_label_studio_yolo_zip_is_matched_by_file_stem(tmp_path):
    layout, keys = waiting_run(tmp_path)
    zipped = _zip(tmp_path / "project-1-yolo.zip", {
        "classes.txt": "car\n", "notes.json": "{}",
        "labels/a.txt": "0 0.5 0.5 0.2 0.4\n",      # 100 x 50 px: centre (50, 25), 20 x 20
        "labels/1a2b3c4d-b.txt": "",               # an upload's hashed name; labelled, no objects
        "labels/d.txt": "0 0.5 0.5 0.1 0.1\n"})    # another cycle's image
    path = ingest_labels(layout.root, zipped, partial=True)
    new = json.loads(path.read_text())
    assert [i["taast_image_id"] for i in new["images"]] == ["pool/a.jpg", "pool/b.jpg"]
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in new["annotations"]] == \
        [(1, 1, [40.0, 15.0, 20.0, 20.0])]
    record = json.loads(layout.cycle(1).ingest_record.read_text())
    assert record["missing"] == ["pool/c.jpg"] and record["not_selected"] == 1
    bad = _zip(tmp_path / "bad.zip", {"classes.txt": "truck\n", "labels/a.txt": ""})
    with pytest.raises(InputError, match=r"bad.zip: label 'truck' \(classes.txt\) is not a category of this run"):
        ingest_labels(layout.root, bad)
    odd = _zip(tmp_path / "odd.zip", {"readme.md": "hello"})
    with pytest.raises(InputError, match="odd.zip: a zip export holding neither result.json"):
        ingest_labels(layout.root, odd)
