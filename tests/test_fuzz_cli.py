"""Fuzzing `taast select --detections` through the real command line, in process (issue 17, Build 7).

Random malformed detections, embeddings, label files and configurations are written to disk and
handed to ``taast_ray.cli.main``. The only outcomes allowed: exit 0 with a complete, checked output
set, or exit 2 with exactly one line on stderr and no output directory at all. Never a traceback
(any exception escaping ``main`` fails the test), never a partial set. The whole module runs in
well under a minute (example counts below).
"""
from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from taast_ray.cli import main
from taast_ray.selection.registry import names as strategy_names
from taast_ray.io import check_output_set
from tests import fuzz_stats
from tests.factories import detections_table, write_embeddings, write_labels

NUM_CLASSES = 3
F32_ROWS = pa.list_(pa.list_(pa.float32()))
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
NO_SHRINK = (Phase.explicit, Phase.generate)  # an expected failure need not be minimised (seconds each)

numbers = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, 1e30]))
image_ids = st.one_of(st.sampled_from(["a", "b", "c", "img_1", "", "7"]), st.text(max_size=4))


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    return write_labels(tmp_path_factory.mktemp("labels") / "labels.json", [4, 2, 1])


@pytest.fixture(scope="module")
def good_detections(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "det.parquet"
    pq.write_table(detections_table(40, NUM_CLASSES, seed=3, confident_share=0.3), path)
    return path


BOUNDARY = "select --detections / --embeddings (parquet) and their labels, configs"


@pytest.fixture(autouse=True)
def _timed():
    with fuzz_stats.timed(BOUNDARY):
        yield


def run_cli(argv: list, capsys) -> None:
    """Run once; assert the outcome is success with a whole set, or exit 2 with one line and nothing."""
    out = Path(argv[argv.index("--out") + 1])
    capsys.readouterr()
    code = main([str(a) for a in argv])  # an exception here is the traceback a user would see
    err = capsys.readouterr().err.strip()
    fuzz_stats.count_example(BOUNDARY, accepted=code == 0)
    assert code in (0, 2), (code, err)
    if code == 0:
        check_output_set(out)
    else:
        assert len(err.splitlines()) == 1 and err.startswith("taast: error: "), err
        assert not out.exists(), f"exit 2 left {sorted(p.name for p in out.iterdir())}"


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="taast-fuzz-"))


def select_argv(work: Path, detections, labels, *extra) -> list:
    return ["select", "--detections", detections, "--labels", labels, "--out", work / "out", *extra]


@st.composite
def well_typed_detections(draw) -> pa.Table:
    """The contract's column types, malformed values: NaN/inf/negative/out-of-range scores, ragged
    boxes and scores, boxes of 3 or 5 numbers, duplicate or empty ids, wrong class counts, odd sizes."""
    rows = draw(st.integers(0, 8))
    classes = draw(st.sampled_from([NUM_CLASSES, NUM_CLASSES, NUM_CLASSES + 1, 1]))
    ids, boxes, scores = [], [], []
    for _ in range(rows):
        n = draw(st.integers(0, 3))
        box_len = draw(st.sampled_from([4, 4, 4, 3, 5]))
        ids.append(draw(image_ids))
        boxes.append([[draw(numbers) for _ in range(box_len)] for _ in range(n)])
        n_scores = n if draw(st.booleans()) or n == 0 else draw(st.integers(0, 3))
        scores.append([[draw(numbers) for _ in range(classes)] for _ in range(n_scores)])
    columns = {"image_id": pa.array(ids, pa.string()), "boxes": pa.array(boxes, F32_ROWS),
               "scores": pa.array(scores, F32_ROWS)}
    if draw(st.booleans()):
        sizes = st.one_of(st.none(), st.integers(-5, 5000))
        columns["width"] = pa.array([draw(sizes) for _ in range(rows)], pa.int32())
        columns["height"] = pa.array([draw(sizes) for _ in range(rows)], pa.int32())
    drop = draw(st.sampled_from([None, None, None, "image_id", "boxes", "scores"]))
    return pa.table({k: v for k, v in columns.items() if k != drop})


@given(table=well_typed_detections(), budget=st.integers(-1, 4), strategy=st.sampled_from(strategy_names()))
@FUZZ
def test_fuzz_detection_values(table, budget, strategy, labels_file, capsys):
    work = fresh_dir()
    try:
        pq.write_table(table, work / "det.parquet")
        ids = table.column("image_id").to_pylist() if "image_id" in table.column_names else []
        emb = write_embeddings(work / "emb.parquet", sorted({str(i) for i in ids}) or ["x"], dim=4)
        run_cli(select_argv(work, work / "det.parquet", labels_file, "--budget", budget,
                            "--strategy", strategy, "--embeddings", emb), capsys)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@st.composite
def mistyped_detections(draw) -> pa.Table:
    """Columns of the wrong Arrow type (strings, integers, flat lists) where the contract has others."""
    base = detections_table(6, NUM_CLASSES, seed=draw(st.integers(0, 5)))
    column = draw(st.sampled_from(["image_id", "boxes", "scores", "width"]))
    kind = draw(st.sampled_from(["strings", "integers", "flat floats", "strings of lists"]))
    n = base.num_rows
    replacement = {
        "strings": pa.array([draw(st.text(max_size=5)) for _ in range(n)], pa.string()),
        "integers": pa.array([draw(st.integers(-3, 3)) for _ in range(n)], pa.int64()),
        "flat floats": pa.array([[draw(numbers) for _ in range(4)] for _ in range(n)], pa.list_(pa.float32())),
        "strings of lists": pa.array([[[str(draw(numbers))] * 4] for _ in range(n)], pa.list_(pa.list_(pa.string()))),
    }[kind]
    return base.set_column(base.column_names.index(column), column, replacement)


@given(table=mistyped_detections())
@settings(FUZZ, max_examples=20, phases=NO_SHRINK)
def test_fuzz_detection_column_types(table, labels_file, capsys):
    work = fresh_dir()
    try:
        pq.write_table(table, work / "det.parquet")
        run_cli(select_argv(work, work / "det.parquet", labels_file, "--budget", 2, "--strategy", "entropy"), capsys)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@st.composite
def embeddings_values(draw) -> pa.Table:
    """Well-typed embeddings with malformed values: NaN, zero vectors, ragged dimensions, missing
    and duplicate ids, no rows."""
    ids = [f"img_{i:05d}" for i in range(40)]
    chosen = draw(st.lists(st.sampled_from(ids + ["1", "2", "zzz"]), max_size=45))
    dims = draw(st.sampled_from([[4], [4], [1], [4, 5], [0]]))
    vectors = [[draw(numbers) for _ in range(draw(st.sampled_from(dims)))] for _ in chosen]
    return pa.table({"image_id": pa.array(chosen, pa.string()),
                     "embedding": pa.array(vectors, pa.list_(pa.float32()))})


@given(table=embeddings_values(), strategy=st.sampled_from(["taast", "coreset", "taast-no-rarity"]),
       budget=st.integers(1, 5))
@FUZZ
def test_fuzz_embedding_values(table, strategy, budget, good_detections, labels_file, capsys):
    work = fresh_dir()
    try:
        pq.write_table(table, work / "emb.parquet")
        run_cli(select_argv(work, good_detections, labels_file, "--budget", budget, "--strategy", strategy,
                            "--embeddings", work / "emb.parquet"), capsys)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@given(kind=st.sampled_from(["strings", "integers", "nested", "int ids", "structs"]))
@settings(FUZZ, max_examples=10, phases=NO_SHRINK)
def test_fuzz_embedding_column_types(kind, good_detections, labels_file, capsys):
    work = fresh_dir()
    try:
        ids = [f"img_{i:05d}" for i in range(40)]
        column = {"strings": pa.array(["0.1,0.2"] * 40), "integers": pa.array(list(range(40))),
                  "nested": pa.array([[[0.1, 0.2]]] * 40), "int ids": pa.array([[0.1, 0.2]] * 40),
                  "structs": pa.array([{"x": 1.0}] * 40)}[kind]
        id_column = pa.array(range(40)) if kind == "int ids" else pa.array(ids)
        pq.write_table(pa.table({"image_id": id_column, "embedding": column}), work / "emb.parquet")
        run_cli(select_argv(work, good_detections, labels_file, "--budget", 3, "--strategy", "taast",
                            "--embeddings", work / "emb.parquet"), capsys)
    finally:
        shutil.rmtree(work, ignore_errors=True)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 10**12), numbers.filter(np.isfinite),
                                     st.text(max_size=6)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)


@functools.lru_cache(maxsize=1)
def template_labels() -> dict:
    folder = fresh_dir()
    try:
        return json.loads(write_labels(folder / "l.json", [3, 2, 1]).read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@st.composite
def broken_labels(draw) -> bytes:
    """A valid LVIS-style file with one to three random edits, or bytes that are not JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=30))
    data = json.loads(json.dumps(template_labels()))
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["images", "annotations", "categories", None]))
        if section is None:
            key = draw(st.sampled_from(["images", "annotations", "categories", "info"]))
            data[key] = draw(json_values) if draw(st.booleans()) else data.pop(key, None) and None
            continue
        if not isinstance(data.get(section), list) or not data[section]:
            continue
        record = data[section][draw(st.integers(0, len(data[section]) - 1))]
        if not isinstance(record, dict):
            continue
        key = draw(st.sampled_from(sorted(record) + ["extra"]))
        if draw(st.booleans()):
            record[key] = draw(st.one_of(json_values, st.sampled_from([-1, 0, 10**9, "x", [0, 0, -5, 3], None])))
        else:
            record.pop(key, None)
    return json.dumps(data).encode() if draw(st.integers(0, 5)) else json.dumps(data).encode()[:-draw(st.integers(1, 9))]


@given(content=broken_labels(), strategy=st.sampled_from(["entropy", "random", "taast-no-diversity"]))
@FUZZ
def test_fuzz_label_files(content, strategy, good_detections, capsys):
    work = fresh_dir()
    try:
        (work / "labels.json").write_bytes(content)
        run_cli(select_argv(work, good_detections, work / "labels.json", "--budget", 3, "--strategy", strategy),
                capsys)
    finally:
        shutil.rmtree(work, ignore_errors=True)


SECTIONS = {"selection": ["strategy", "budget", "seed", "tau", "candidate_fraction", "beta", "count_mode",
                          "kmeans_backend", "kmeans_iters", "kmeans_max_points_per_centroid", "det_conf"],
            "model": ["weights", "imgsz", "embedder"], "ray": ["address", "batch_size", "use_gpu", "decode"],
            "train": ["epochs", "lr0"], "protocol": ["cycles", "seeds"], "nosuch": ["field"]}


@st.composite
def broken_configs(draw) -> str:
    """YAML of random sections and fields (known and unknown) with random values, or not YAML."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=30))
    config = {}
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(SECTIONS)))
        field = draw(st.sampled_from(SECTIONS[section] + ["unknown_field"]))
        value = draw(st.one_of(json_values, st.sampled_from(["taast", "faiss", "images", 0, -1, 1.5, "notahost:abc"])))
        config.setdefault(section, {})[field] = value
    if draw(st.integers(0, 7)) == 0:
        config = draw(json_values)
    return yaml.safe_dump(config)


@given(config=broken_configs(), override=st.one_of(st.none(), st.text(max_size=12),
                                                   st.sampled_from(["selection.budget=x", "selection=1", "a.b.c=1",
                                                                    "selection.tau=nan", "ray.address=h:"])),
       small_budget=st.booleans())
@FUZZ
def test_fuzz_configurations(config, override, small_budget, good_detections, labels_file, capsys):
    work = fresh_dir()
    try:
        (work / "c.yaml").write_text(config)
        extra = ["--config", work / "c.yaml", "--strategy", "entropy"] + (["--set", override] if override else [])
        extra += ["--budget", 3] if small_budget else []  # else the config's, or 256 (> the 40 images)
        run_cli(select_argv(work, good_detections, labels_file, *extra), capsys)
    finally:
        shutil.rmtree(work, ignore_errors=True)
