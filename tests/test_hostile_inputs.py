"""The hostile probe's examples of issue 31, each a test: a bad value or file is one line naming
it and exit 2 (never a traceback, never a partial output set); a bug is the last line of defence's
one line and exit 70, with the traceback in a file."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray import cli
from taast_ray.cli import main

CATS = [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "L.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}], "categories": CATS}))
    pq.write_table(pa.table({"image_id": ["a", "b", "c"], "boxes": [[[0.0, 0.0, 5.0, 5.0]]] * 3,
                             "scores": [[[0.5, 0.2]]] * 3}), tmp_path / "det.parquet")
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "bigcat.json").write_text(json.dumps({"images": [], "annotations": [],
                                                      "categories": [{"id": 2 ** 70, "name": "car"}]}))
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "sel").mkdir()
    (tmp_path / "sel" / "label_studio_tasks.json").write_text("{not json")
    (tmp_path / "sel" / "pseudo_labels.json").write_text(json.dumps({"categories": CATS}))
    return tmp_path


SELECT = ["select", "--detections", "{t}/det.parquet", "--labels", "{t}/L.json", "--strategy", "entropy",
          "--out", "{t}/out"]
CASES = {
    "a binary file as --config": (SELECT + ["--budget", "1", "--config", "{t}/bin.yaml"], "bin.yaml: not UTF-8"),
    "--set budget=.inf": (SELECT + ["--set", "selection.budget=.inf"], "selection.budget: expected int, got inf"),
    "--set tau=[": (SELECT + ["--set", "selection.tau=["], "selection.tau: '\\[' is not a YAML value"),
    "--seed -1": (SELECT + ["--budget", "1", "--strategy", "random", "--seed", "-1"], "selection.seed: must be in"),
    "a 70-bit seed": (SELECT + ["--budget", "1", "--seed", str(2 ** 70)], "selection.seed: .* out of range"),
    "a category id beyond int64": (["select", "--detections", "{t}/det.parquet", "--labels", "{t}/bigcat.json",
                                    "--budget", "1", "--strategy", "entropy", "--out", "{t}/out"],
                                   r"bigcat.json: categories\[0\] id: out of range \(a 64-bit integer\)"),
    "labels nested 200,000 deep": (["select", "--detections", "{t}/det.parquet", "--labels", "{t}/deep.json",
                                    "--budget", "1", "--strategy", "entropy", "--out", "{t}/out"],
                                   "deep.json: not valid JSON .nested too deep"),
    "--ground-truth a JSON list": (SELECT + ["--budget", "1", "--ground-truth", "{t}/list.json"],
                                   "list.json: missing the 'categories' list"),
    "a 0-byte pool manifest": (["select", "--pool", "{t}/empty.parquet", "--labels", "{t}/L.json", "--budget", "1",
                                "--out", "{t}/out"], "empty.parquet: not a readable parquet manifest"),
    "corrupt tasks given to export": (["export", "{t}/sel", "--format", "coco", "--out", "{t}/x.json"],
                                      "label_studio_tasks.json: not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_input_is_one_line_and_exit_2(files, case, capsys):
    argv, message = CASES[case]
    assert main([a.replace("{t}", str(files)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("taast: error:"), err
    import re

    assert re.search(message, err), err
    assert not (files / "out").exists() and not (files / "x.json").exists()


def test_a_bug_is_one_line_exit_70_and_a_saved_traceback(files, capsys, monkeypatch, tmp_path):
    """The last line of defence: an exception no check foresaw (here planted in the scoring)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)

    def boom(*a, **k):
        raise ZeroDivisionError("planted")
    monkeypatch.setattr("taast_ray.pipeline.precomputed.score_detections", boom)
    argv = [a.replace("{t}", str(files)) for a in SELECT + ["--budget", "1"]]
    assert main(argv) == cli.INTERNAL_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("taast: internal error: ZeroDivisionError: planted")
    [saved] = tmp_path.glob("taast-crash-*.txt")
    assert "Traceback" in saved.read_text() and "planted" in saved.read_text()
    assert not (files / "out").exists() and not list(files.glob("out*"))  # no set, no lock left


@pytest.mark.parametrize("value, message", [
    ("oops", "value: must be an object, got 'oops'"),
    ({"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": "car"},
     "value.rectanglelabels: must be a list, got 'car'"),
    ({"x": 1, "y": 1, "width": 5, "height": 5, "rotation": "x", "rectanglelabels": ["car"]},
     "value.rotation: must be a number, got 'x'"),
])
def test_label_studio_results_of_the_wrong_type(tmp_path, value, message, capsys):
    from tests.loop.test_ingest import waiting_run

    layout, keys = waiting_run(tmp_path)
    export = [{"id": 5, "data": {"image_id": keys[0]},
               "annotations": [{"result": [{"type": "rectanglelabels", "value": value}]}]}]
    (tmp_path / "e.json").write_text(json.dumps(export))
    assert main(["ingest", "--run", str(layout.root), "--labels", str(tmp_path / "e.json"), "--partial"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("e.json: task 5 annotations[0].result[0]." + message), err
    assert not layout.cycle(1).labels_new.exists()


def test_a_coco_export_with_a_width_that_is_not_a_number(tmp_path, capsys):
    from tests.loop.test_ingest import waiting_run

    layout, keys = waiting_run(tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": keys[0], "width": "wide", "height": 50}], "annotations": [],
        "categories": [{"id": 1, "name": "car"}]}))
    assert main(["ingest", "--run", str(layout.root), "--labels", str(tmp_path / "c.json"), "--partial"]) == 2
    assert "c.json: image 1 width: must be a number, got 'wide'" in capsys.readouterr().err


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (no pixel data)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_yolo_imports_that_cannot_be_read(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "a.yaml").write_text("names: [car]\nval: images\n")  # no train:
    assert main(["import", "yolo", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "o1")]) == 2
    assert "a.yaml: no 'train:' entry" in capsys.readouterr().err
    (tmp_path / "images" / "big.png").write_bytes(_png_header(20000, 20000))  # a labelled bomb
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "big.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "b.yaml").write_text("names: [car]\ntrain: images\n")
    assert main(["import", "yolo", str(tmp_path / "b.yaml"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "big.png: the image is too large to decode" in err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_zero_dimension_embeddings_are_refused_not_a_crash(files, capsys):
    n = 40
    ids = [f"i{k}" for k in range(n)]
    pq.write_table(pa.table({"image_id": ids, "boxes": [[[0.0, 0.0, 5.0, 5.0]]] * n,
                             "scores": [[[0.3 + 0.01 * k, 0.2]] for k in range(n)]}), files / "det40.parquet")
    pq.write_table(pa.table({"image_id": ids, "embedding": pa.array([[]] * n, pa.list_(pa.float32()))}),
                   files / "emb0.parquet")
    argv = ["select", "--detections", str(files / "det40.parquet"), "--embeddings", str(files / "emb0.parquet"),
            "--labels", str(files / "L.json"), "--budget", "3", "--out", str(files / "out")]
    assert main(argv) == 2  # FAISS k-means on 0 dimensions died of SIGFPE and left the lock behind
    assert "emb0.parquet: embedding of image_id 'i0' is empty (0 dimensions)" in capsys.readouterr().err
    assert not (files / "out").exists()


@pytest.mark.parametrize("content, message", [
    ("{not json", "label_studio_tasks.json: not valid JSON"),
    ('[{"data": {"image": "a.jpg", "image_id": 7}}]', r"label_studio_tasks.json: tasks\[0\] data.image_id: must be"),
])
def test_ingest_with_an_edited_selection_tasks_file(tmp_path, content, message, capsys):
    """The selection's own tasks file, edited by hand before an ingest, is read through its schema."""
    import re

    from tests.loop.test_ingest import waiting_run

    layout, keys = waiting_run(tmp_path)
    layout.cycle(1).label_studio_tasks.write_text(content)
    (tmp_path / "c.json").write_text(json.dumps({"images": [], "annotations": [], "categories": CATS}))
    assert main(["ingest", "--run", str(layout.root), "--labels", str(tmp_path / "c.json"), "--partial"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
