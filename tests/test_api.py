"""The Python API (taast_ray.select / run): the command's options as keywords, and a Ray Dataset as
the pool, through real Ray, Ultralytics (a random YOLOv8n) and the detector's own features."""
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import taast_ray
from taast_ray.api import configure
from taast_ray.data.synth import make_synthetic_dataset
from taast_ray.errors import ConfigError, InputError

README = Path(__file__).resolve().parents[1] / "README.md"
OPTIONS = dict(budget=4, weights="yolov8n.yaml", imgsz=64, embedder="detector", seed=7,
               settings={"selection.det_conf": 0.001, "selection.tau": 0.5, "ray.detector_actors_max": 1,
                         "ray.batch_size": 8})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    make_synthetic_dataset(root / "synth", images=40, classes=4, seed=5, image_size=96)
    return root / "synth" / "images" / "train", root / "synth" / "annotations" / "val.json"


def test_options_are_the_commands_and_fail_in_one_line():
    cfg = configure({"selection": {"budget": 9}}, {"selection.tau": 0.7}, strategy="entropy", seed=3)
    assert (cfg.selection.budget, cfg.selection.tau, cfg.selection.strategy, cfg.selection.seed) == \
        (9, 0.7, "entropy", 3)
    with pytest.raises(ConfigError, match="^budgett: not an option"):
        configure(budgett=3)
    with pytest.raises(ConfigError, match=r"^selection.tau: must be in \(0, 1\], got 1.5"):
        configure(tau=1.5)
    assert taast_ray.select is taast_ray.api.select and taast_ray.run is taast_ray.api.run


def test_out_is_checked_once_and_named_as_the_caller_names_it(tmp_path):
    """One check for the API and the command line: ``out`` here, ``--out`` from `taast`."""
    from taast_ray.cli import main

    (tmp_path / "taken").write_text("mine")
    for call in (lambda **kw: taast_ray.select(detections="d.parquet", labels="l.json", **kw),
                 lambda **kw: taast_ray.run(**kw)):
        with pytest.raises(ConfigError, match=r"^out: s3://b/r is a URI; "):
            call(out="s3://b/r")
        with pytest.raises(ConfigError, match=r"^--out: .*taken is a file, not a folder$"):
            call(out=tmp_path / "taken", out_flag="--out")
    assert main(["run", "--out", "gs://b/r"]) == 2
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.slow
def test_a_dataset_of_bytes_selects_as_the_folder_does(data, tmp_path, ray_local):
    import ray

    images, labels = data
    folder = taast_ray.select(str(images), labels=labels, out=tmp_path / "folder", **OPTIONS)
    # the same images as a Dataset of (image_id, bytes), named as the folder's listing names them
    files = sorted(p for p in images.iterdir() if p.suffix == ".jpg")
    frames = ray.data.from_items([{"image_id": p.name, "bytes": p.read_bytes()} for p in files])
    from_bytes = taast_ray.select(frames, labels=labels, out=tmp_path / "bytes", **OPTIONS)
    assert from_bytes.summary["pool_size"] == folder.summary["pool_size"] == len(files)
    assert from_bytes.selection.num_rows == 4 == len(set(from_bytes.image_ids))
    # the same detections and the same candidates (a random detector ties every image's E(x), so
    # k-means on its near-equal features may split the candidates differently at float noise)
    assert _detections(tmp_path / "bytes") == pytest.approx(_detections(tmp_path / "folder"), abs=1e-4)
    assert _candidates(tmp_path / "bytes") == _candidates(tmp_path / "folder")
    assert set(from_bytes.image_ids) <= _candidates(tmp_path / "bytes")
    # a Dataset of paths (Ray's own reader, include_paths) reads them where they are; ids are the paths
    paths = ray.data.read_binary_files(str(images), include_paths=True)
    from_paths = taast_ray.select(paths, labels=labels, out=tmp_path / "paths", **OPTIONS)
    det = pq.read_table(tmp_path / "paths" / "detections")
    assert sorted(Path(i).name for i in det.column("image_id").to_pylist()) == [p.name for p in files]
    assert det.column("uri").to_pylist() == det.column("image_id").to_pylist()
    by_name = dict(zip((Path(i).name for i in det.column("image_id").to_pylist()), det.column("scores").to_pylist()))
    assert [v for name in sorted(by_name) for box in by_name[name] for v in box] == \
        pytest.approx(_detections(tmp_path / "folder"), abs=1e-4)
    assert from_paths.selection.column("uri").to_pylist() == from_paths.image_ids  # the path is its uri


def _detections(out):
    table = pq.read_table(out / "detections").sort_by("image_id")
    return [v for row in table.column("scores").to_pylist() for box in row for v in box]


def _candidates(out) -> set:
    scores = pq.read_table(out / "scores.parquet")
    return {i for i, c in zip(scores.column("image_id").to_pylist(), scores.column("candidate").to_pylist()) if c}


@pytest.mark.slow
def test_a_dataset_with_a_bad_row_records_it_and_one_without_images_fails(data, tmp_path, ray_local):
    import ray

    images, labels = data
    files = sorted(p for p in images.iterdir() if p.suffix == ".jpg")
    rows = [{"image_id": p.name, "bytes": p.read_bytes()} for p in files] + [{"image_id": "bad.jpg",
                                                                                "bytes": b"not an image"}]
    sel = taast_ray.select(ray.data.from_items(rows), labels=labels, out=tmp_path / "o", **OPTIONS)
    errors = pq.read_table(tmp_path / "o" / "errors.parquet")
    assert errors.column("image_id").to_pylist() == ["bad.jpg"] and "bad.jpg" not in sel.image_ids
    with pytest.raises(InputError, match="pool Dataset: needs a column of image bytes"):
        taast_ray.select(ray.data.from_items([{"x": 1}]), labels=labels, out=tmp_path / "x", **OPTIONS)
    with pytest.raises(InputError, match="pool Dataset: duplicate image_id 'a'"):
        taast_ray.select(ray.data.from_items([{"image_id": "a", "bytes": b"1"}, {"image_id": "a", "bytes": b"2"}]),
                         labels=labels, out=tmp_path / "y", **{**OPTIONS, "budget": 1})


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path, ray_local, monkeypatch):
    text = README.read_text()
    section = text[text.index("## The Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert len(pq.read_table(tmp_path / "selection" / "selection.parquet")) == 8
