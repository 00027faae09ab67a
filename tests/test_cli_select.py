"""`taast select` from precomputed detections: the files of SPEC.md §3 and bad-input exits."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from lvis import LVIS
from pycocotools.coco import COCO

from taast_ray.cli import main
from tests.factories import detections_table, write_detections, write_embeddings, write_labels


@pytest.fixture()
def inputs(tmp_path):
    det = write_detections(tmp_path / "det.parquet", 300, 6, seed=1, confident_share=0.2)
    ids = pq.read_table(det).column("image_id").to_pylist()
    labels = write_labels(tmp_path / "labels.json", [40, 20, 8, 3, 1, 0])
    emb = write_embeddings(tmp_path / "emb.parquet", ids + [str(i) for i in range(1, 41)], seed=2)
    return det, labels, emb, tmp_path


def run(*argv):
    return main([str(a) for a in argv])


def test_select_writes_the_contract(inputs):
    det, labels, emb, tmp = inputs
    out = tmp / "out"
    assert run("select", "--detections", det, "--embeddings", emb, "--labels", labels, "--budget", 16,
               "--strategy", "taast", "--seed", 3, "--out", out) == 0
    scores = pq.read_table(out / "scores.parquet")
    assert scores.column_names == ["image_id", "entropy", "candidate_class", "weight", "score",
                                   "pseudo", "candidate", "cluster", "selected"]
    assert scores.num_rows == 300
    sel = pq.read_table(out / "selection.parquet").to_pydict()
    assert sel["rank"] == list(range(16)) and not any(sel["fill"])
    assert set(sel["image_id"]) == {i for i, s in zip(scores.column("image_id").to_pylist(),
                                                      scores.column("selected").to_pylist()) if s}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selected"] == 16 and summary["pool_size"] == 300
    assert summary["eligible"] + summary["pseudo_labelled"] == 300
    assert summary["candidates"] == max(int(np.ceil(0.2 * summary["eligible"])), 16)
    assert summary["kmeans_backend"] and "score" in summary["timings_s"]
    assert summary["config"]["selection"]["budget"] == 16 and summary["versions"]["numpy"]
    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    assert [t["data"]["image_id"] for t in tasks] == sel["image_id"]
    assert (out / "config.yaml").exists()
    pseudo = json.loads((out / "pseudo_labels.json").read_text())
    assert len(pseudo["images"]) == summary["pseudo_labelled"] > 0
    COCO(str(out / "pseudo_labels.json"))  # loads as COCO


def test_same_seed_same_selection_and_every_strategy(inputs):
    det, labels, emb, tmp = inputs
    picked = {}
    for strategy in ("taast", "entropy", "random", "coreset", "taast-no-diversity", "taast-no-rarity"):
        for rep in range(2):
            out = tmp / f"{strategy}{rep}"
            assert run("select", "--detections", det, "--embeddings", emb, "--labels", labels,
                       "--budget", 10, "--strategy", strategy, "--out", out) == 0
            picked.setdefault(strategy, []).append(
                pq.read_table(out / "selection.parquet").column("image_id").to_pylist())
        assert picked[strategy][0] == picked[strategy][1]
    assert picked["taast"] != picked["entropy"]


@pytest.mark.parametrize("extra, message", [
    (["--budget", "0"], "selection.budget"),
    (["--budget", "301"], "larger than the pool"),
    (["--strategy", "taast", "--embeddings", "MISSING"], "embeddings file not found"),
])
def test_bad_input_exits_non_zero_with_one_line(inputs, capsys, extra, message):
    det, labels, emb, tmp = inputs
    args = ["select", "--detections", det, "--labels", labels, "--out", tmp / "bad",
            "--strategy", "entropy"] + extra
    assert run(*args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp / "bad").exists()


def test_missing_candidate_embedding_is_named(inputs, capsys):
    det, labels, _, tmp = inputs
    ids = pq.read_table(det).column("image_id").to_pylist()
    partial = write_embeddings(tmp / "partial.parquet", ids[:10])
    assert run("select", "--detections", det, "--embeddings", partial, "--labels", labels,
               "--budget", 5, "--out", tmp / "bad") == 2
    assert "no embedding for candidate image_id" in capsys.readouterr().err
    assert not (tmp / "bad").exists()


def test_unknown_category_in_labels(inputs, capsys):
    det, labels, emb, tmp = inputs
    data = json.loads(labels.read_text())
    data["annotations"][0]["category_id"] = 77
    labels.write_text(json.dumps(data))
    assert run("select", "--detections", det, "--labels", labels, "--budget", 5, "--strategy",
               "entropy", "--out", tmp / "bad") == 2
    assert "labels.json: annotation 1 category_id: unknown category 77" in capsys.readouterr().err


def test_pseudo_labels_load_with_lvis_when_numeric_ids(tmp_path):
    t = detections_table(40, 3, seed=5, confident_share=0.8)
    ids = [str(1000 + i) for i in range(40)]
    pq.write_table(t.set_column(0, "image_id", __import__("pyarrow").array(ids)), tmp_path / "d.parquet")
    labels = write_labels(tmp_path / "l.json", [5, 2, 1])
    assert run("select", "--detections", tmp_path / "d.parquet", "--labels", labels, "--budget", 3,
               "--strategy", "entropy", "--out", tmp_path / "o") == 0
    pseudo = json.loads((tmp_path / "o" / "pseudo_labels.json").read_text())
    assert {img["id"] for img in pseudo["images"]} <= {int(i) for i in ids}


@pytest.mark.parametrize("strategy", ["taast-expected", "taast-balanced"])
def test_select_a_tail_aware_variant(inputs, strategy):
    """The variants through `taast select --detections`: B picks, their own weight column."""
    det, labels, emb, tmp = inputs
    out = tmp / strategy
    assert run("select", "--detections", det, "--embeddings", emb, "--labels", labels, "--budget", 12,
               "--strategy", strategy, "--seed", 3, "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == strategy and summary["selected"] == 12 and summary["filled"] == 0
    scores = pq.read_table(out / "scores.parquet").to_pydict()
    taast = tmp / "taast"
    assert run("select", "--detections", det, "--embeddings", emb, "--labels", labels, "--budget", 12,
               "--strategy", "taast", "--seed", 3, "--out", taast) == 0
    paper = pq.read_table(taast / "scores.parquet").to_pydict()
    assert scores["entropy"] == paper["entropy"] and scores["pseudo"] == paper["pseudo"]
    weighted = [(s, e * w) for s, e, w in zip(scores["score"], scores["entropy"], scores["weight"])
                if w is not None]
    assert all(s == pytest.approx(v, rel=1e-12) for s, v in weighted)  # score = φ = weight · E
    if strategy.endswith("balanced"):
        assert summary["class_cap"] >= 1
        classes = [c for c, s in zip(scores["candidate_class"], scores["selected"]) if s and c is not None]
        assert max(classes.count(c) for c in set(classes)) <= summary["class_cap"] or summary["cap_relaxed"]
    assert (scores["weight"] == paper["weight"]) == (strategy == "taast-balanced")


def _zero_box_pool(tmp_path, n=120):
    import pyarrow as pa

    f32 = pa.list_(pa.list_(pa.float32()))
    ids = [f"img_{i:05d}" for i in range(n)]
    table = pa.table({"image_id": ids, "boxes": pa.array([[]] * n, f32), "scores": pa.array([[]] * n, f32),
                      "width": pa.array([160] * n, pa.int32()), "height": pa.array([120] * n, pa.int32())})
    pq.write_table(table, tmp_path / "empty.parquet")
    emb = write_embeddings(tmp_path / "emb0.parquet", ids + [str(i) for i in range(1, 41)], seed=2)
    return tmp_path / "empty.parquet", emb, ids


@pytest.mark.parametrize("strategy", ["taast-no-diversity", "taast", "taast-expected", "taast-balanced"])
def test_a_zero_box_pool_warns_and_ties_go_by_a_seeded_hash(tmp_path, capsys, strategy):
    """Issue 16: no boxes anywhere → every φ is 0; loud on stderr and in summary.json, and the
    pick is a seeded order of image_ids (same seed, same pick; another seed, another), never the
    first B by file name."""
    det, emb, ids = _zero_box_pool(tmp_path)
    labels = write_labels(tmp_path / "labels.json", [40, 20, 8, 3, 1, 0])
    picked = {}
    for seed, name in ((5, "a"), (5, "b"), (6, "c")):
        assert run("select", "--detections", det, "--embeddings", emb, "--labels", labels, "--budget", 10,
                   "--strategy", strategy, "--seed", seed, "--out", tmp_path / name) == 0
        picked[name] = pq.read_table(tmp_path / name / "selection.parquet").column("image_id").to_pylist()
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert len(summary["warnings"]) == 2
        assert "no boxes on 120 of 120 pool images" in summary["warnings"][0]
        assert "same φ(x) (0)" in summary["warnings"][1]
    err = capsys.readouterr().err
    assert err.count("WARNING: the detector found no boxes on 120 of 120") == 3
    assert picked["a"] == picked["b"] and set(picked["a"]) != set(picked["c"])
    assert picked["a"] != sorted(ids)[:10] and picked["a"] != sorted(picked["a"])
    if strategy == "taast-no-diversity":  # the top B by φ, all tied: the seeded hash order itself
        from taast_ray.selection.candidates import seeded_tie_rank

        assert picked["a"] == [ids[i] for i in np.argsort(seeded_tie_rank(ids, 5))[:10]]


def test_a_normal_selection_has_no_warnings(inputs):
    det, labels, emb, tmp = inputs
    assert run("select", "--detections", det, "--labels", labels, "--budget", 8,
               "--strategy", "entropy", "--out", tmp / "q") == 0
    assert json.loads((tmp / "q" / "summary.json").read_text())["warnings"] == []
