"""The streaming pass (issue 18): the same selection, bit for bit, as scoring the whole table."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray.config import config_from_dict
from taast_ray.data.labels import load_labels
from taast_ray.selection.candidates import id_rank, rank_by_value, top_candidates
from taast_ray.contracts.embeddings import ParquetEmbeddings
from taast_ray.contracts.pool import stream_pool
from taast_ray.pipeline.precomputed import select_from_detections
from taast_ray.selection.registry import strategy as strategy_record
from taast_ray.selection.scoring import reduce_images, score_images
from taast_ray.selection.strategies import SelectionContext
from tests.factories import detections_table, read_detections, run_strategy, write_embeddings, write_labels


@pytest.fixture(scope="module")
def moderate(tmp_path_factory):
    """20,000 images in shuffled order, in row groups and batches smaller than the pool."""
    tmp = tmp_path_factory.mktemp("moderate")
    t = detections_table(20_000, 12, seed=11, confident_share=0.15)
    t = t.take(np.random.default_rng(2).permutation(t.num_rows))
    pq.write_table(t, tmp / "det.parquet", row_group_size=3_000)
    ids = t.column("image_id").to_pylist()
    write_labels(tmp / "labels.json", [40, 0, 3, 9, 1, 0, 22, 5, 2, 0, 7, 1])
    write_embeddings(tmp / "emb.parquet", ids, dim=24, seed=3, clusters=40)
    return tmp


def reference_selection(folder, strategy: str, budget: int):
    """The selection as the code before issue 18 made it: every score row in memory."""
    labels = load_labels(folder / "labels.json")
    det = read_detections(folder / "det.parquet", labels.num_classes)
    scored = score_images(det.scores, det.offsets, labels.class_counts("images"),
                          use_rarity=strategy != "taast-no-rarity", rule=strategy_record(strategy).rarity_rule)
    emb = ParquetEmbeddings(folder / "emb.parquet")
    ctx = SelectionContext(image_ids=det.image_ids, tie_rank=id_rank(det.image_ids), scored=scored,
                           budget=budget, seed=5, embed=emb.get,
                           labelled_embeddings=lambda: emb.get_present([]))
    picks = run_strategy(strategy, ctx)
    return det, scored, picks


@pytest.mark.parametrize("strategy", ["taast", "taast-no-rarity", "entropy", "random",
                                      "taast-expected", "taast-balanced"])
def test_streamed_selection_is_the_whole_table_selection(moderate, strategy, tmp_path):
    det, scored, picks = reference_selection(moderate, strategy, 48)
    cfg = config_from_dict({"selection": {"strategy": strategy, "budget": 48, "seed": 5}}).validate()
    summary = select_from_detections(cfg, moderate / "det.parquet", moderate / "labels.json",
                                     tmp_path / "out", moderate / "emb.parquet")
    sel = pq.read_table(tmp_path / "out" / "selection.parquet").to_pydict()
    assert sel["image_id"] == det.image_ids[picks.rows].tolist()
    assert sel["fill"] == picks.fill.tolist()
    scores = pq.read_table(tmp_path / "out" / "scores.parquet")
    order = np.argsort(det.image_ids.astype(str), kind="stable")
    assert scores.column("image_id").to_pylist() == det.image_ids[order].tolist()
    np.testing.assert_array_equal(scores.column("entropy").to_numpy(), scored.entropy[order])
    has = scored.candidate_class[order] >= 0  # w_{c(x)}, or the variant's w(x), from the memory map
    weight = scored.weights[np.maximum(scored.candidate_class, 0)] if scored.image_weight is None \
        else scored.image_weight
    np.testing.assert_array_equal(scores.column("weight").to_numpy(zero_copy_only=False)[has], weight[order][has])
    np.testing.assert_array_equal(scores.column("score").to_numpy(zero_copy_only=False), picks.score[order])
    np.testing.assert_array_equal(scores.column("pseudo").to_numpy(zero_copy_only=False), scored.pseudo[order])
    np.testing.assert_array_equal(scores.column("candidate").to_numpy(zero_copy_only=False), picks.candidate[order])
    assert summary["pseudo_labelled"] == int(scored.pseudo.sum())
    assert summary["boxes"] == int(det.offsets[-1])
    pseudo = json.loads((tmp_path / "out" / "pseudo_labels.json").read_text())
    assert len(pseudo["images"]) == int(scored.pseudo.sum())
    rows = np.flatnonzero(scored.pseudo)
    assert len(pseudo["annotations"]) == int(det.counts[rows].sum())
    tasks = json.loads((tmp_path / "out" / "label_studio_tasks.json").read_text())
    first = picks.rows[0]
    lo, hi = det.offsets[first], det.offsets[first + 1]
    assert [r["score"] for r in tasks[0]["predictions"][0]["result"]] == \
        [float(s.max()) for s in det.scores[lo:hi]]


# Stored from the code before issue 18 (commit 607867c): 2,000 shuffled images × 12 classes,
# taast, B = 16, seed 3 (also kept, with 55 other runs, in the engineer's regression check).
STORED_SELECTION = ['img_00393', 'img_01191', 'img_00809', 'img_01290', 'img_01660', 'img_00689',
                    'img_01434', 'img_01242', 'img_01685', 'img_01107', 'img_00546', 'img_01892',
                    'img_01563', 'img_00296', 'img_01773', 'img_01556']


def test_stored_output_case(tmp_path):
    n, classes, seed = 2000, 12, 4
    t = detections_table(n, classes, seed=seed, confident_share=0.3)
    t = t.take(np.random.default_rng(seed).permutation(n))
    pq.write_table(t, tmp_path / "det.parquet", row_group_size=n // 7)
    write_labels(tmp_path / "labels.json", list(np.random.default_rng(seed).integers(0, 30, classes)))
    write_embeddings(tmp_path / "emb.parquet", t.column("image_id").to_pylist() + [str(i) for i in range(1, 31)],
                     seed=seed)
    cfg = config_from_dict({"selection": {"strategy": "taast", "budget": 16, "seed": 3}}).validate()
    summary = select_from_detections(cfg, tmp_path / "det.parquet", tmp_path / "labels.json",
                                     tmp_path / "out", tmp_path / "emb.parquet")
    sel = pq.read_table(tmp_path / "out" / "selection.parquet").column("image_id").to_pylist()
    assert sel == STORED_SELECTION
    assert (summary["pseudo_labelled"], summary["candidates"]) == (484, 304)


def test_block_by_block_reduction_is_bitwise_the_whole_reduction():
    t = detections_table(700, 9, seed=6, confident_share=0.3)
    from taast_ray.contracts.detections import flatten_detections

    det = flatten_detections(t, 9)
    whole = reduce_images(det.scores, det.offsets, 0.8)
    cuts = [0, 1, 50, 51, 333, 699, 700]
    parts = [reduce_images(det.scores[det.offsets[a]:det.offsets[b]], det.offsets[a:b + 1] - det.offsets[a], 0.8)
             for a, b in zip(cuts[:-1], cuts[1:])]
    for name in ("entropy", "candidate_class", "pseudo", "box_count"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name))
    for mode in ("images", "boxes"):
        np.testing.assert_array_equal(sum(p.pseudo_counts[mode] for p in parts), whole.pseudo_counts[mode])
    np.testing.assert_array_equal(whole.box_class, np.argmax(det.scores, axis=1))
    np.testing.assert_array_equal(whole.box_min, det.scores.min(axis=1))
    np.testing.assert_array_equal(whole.confidence, det.scores.max(axis=1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounded_top_k_is_the_full_sort_even_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n = 5_000
    values = np.round(rng.random(n) * 20) / 20  # 21 distinct values: ties across the cut
    values[rng.random(n) < 0.1] = 0.0
    eligible = rng.random(n) < 0.8
    tie_rank = rng.permutation(n)
    for fraction, budget in ((0.2, 16), (0.01, 5), (0.5, 3000), (0.2, 4000)):
        full = rank_by_value(values, tie_rank, np.flatnonzero(eligible))
        k = len(top_candidates(values, eligible, tie_rank, fraction, budget))
        np.testing.assert_array_equal(top_candidates(values, eligible, tie_rank, fraction, budget), full[:k])


def test_box_rows_come_back_from_the_spool(tmp_path):
    t = detections_table(300, 5, seed=8)
    t = t.append_column("uri", pa.array([f"s3://b/{i}.jpg" for i in range(300)]))
    pq.write_table(t, tmp_path / "d.parquet", row_group_size=40)
    whole = read_detections(tmp_path / "d.parquet", 5)
    pool = stream_pool(tmp_path / "d.parquet", 5, 0.8, batch_rows=32, spool_dir=tmp_path)
    rows = np.array([299, 0, 17, 150, 17])
    got, want = pool.box_rows(rows), whole.rows(rows)
    np.testing.assert_array_equal(got.offsets, want.offsets)
    np.testing.assert_array_equal(got.boxes, want.boxes)
    np.testing.assert_array_equal(got.box_conf, want.scores.max(axis=1))
    np.testing.assert_array_equal(got.box_class, want.scores.argmax(axis=1))
    np.testing.assert_array_equal(got.width, want.width)
    assert got.uri.tolist() == want.uri.tolist() and got.image_ids.tolist() == want.image_ids.tolist()
    assert pool.num_boxes == whole.num_boxes
    pool.close()
    assert not list(tmp_path.glob("taast-spool-*"))  # the spool goes with the pool


def test_a_failed_run_leaves_no_spool(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    t = detections_table(100, 3, seed=1)
    boxes = t.column("boxes").to_pylist()
    boxes[90] = [[5.0, 5.0, 1.0, 9.0]] + boxes[90][1:]
    pq.write_table(t.set_column(1, "boxes", pa.array(boxes, pa.list_(pa.list_(pa.float32())))),
                   tmp_path / "d.parquet")
    with pytest.raises(Exception, match="x2 < x1"):
        stream_pool(tmp_path / "d.parquet", 3, 0.8, batch_rows=16)
    assert not list(tmp_path.glob("taast-spool-*"))


def test_a_variants_score_rows_are_spooled_not_held(tmp_path, rule="expected"):
    """The rarity rule's one C-row per image goes to the spool (a memory map), in stream order,
    equal to the whole-table rows; the class rule spools none."""
    t = detections_table(500, 7, seed=9, confident_share=0.2)
    pq.write_table(t, tmp_path / "d.parquet", row_group_size=70)
    whole = read_detections(tmp_path / "d.parquet", 7)
    reduced = reduce_images(whole.scores, whole.offsets, 0.8, rule)
    pool = stream_pool(tmp_path / "d.parquet", 7, 0.8, batch_rows=64, spool_dir=tmp_path, rule=rule)
    assert isinstance(pool.image_vectors, np.memmap) and pool.image_vectors.shape == (500, 7)
    np.testing.assert_array_equal(np.asarray(pool.image_vectors), reduced.image_vector)
    plain = stream_pool(tmp_path / "d.parquet", 7, 0.8, batch_rows=64, spool_dir=tmp_path)
    assert plain.image_vectors is None and reduce_images(whole.scores, whole.offsets, 0.8).image_vector is None
    pool.close()
    plain.close()


def test_growable_array_grows_by_half_and_trims_to_its_length():
    from taast_ray.contracts.pool import GrowableArray

    a = GrowableArray(np.int64, capacity=4)
    a.append([1, 2, 3])
    assert (a.size, a.capacity) == (3, 4)
    a.append([4, 5])            # 5 > 4: max(5, ceil(4 · 1.5) = 6)
    assert (a.size, a.capacity) == (5, 6)
    a.append(np.arange(6, 14))  # 13 > 6: max(13, 9) = 13
    assert (a.size, a.capacity) == (13, 13)
    a.append([])
    a.append([14])              # 14 > 13: max(14, ceil(19.5) = 20)
    assert (a.size, a.capacity) == (14, 20)
    out = a.finish()
    np.testing.assert_array_equal(out, np.arange(1, 15))
    assert out.dtype == np.int64 and len(out) == 14
    with pytest.raises(RuntimeError):
        a.append([15])
    empty = GrowableArray(np.float32)
    empty.append(np.array([0.5, 1.5], np.float32))
    np.testing.assert_array_equal(empty.finish(), [0.5, 1.5])


def test_string_column_is_the_concatenation_of_its_batches():
    from taast_ray.contracts.pool import _StringColumn

    col = _StringColumn(expected_rows=1)  # 16 bytes expected: grown twice
    parts = [pa.array(["a", "bcd", ""]), pa.array(["é", "xyzxyzxyzxyzxyzxyz"], pa.large_string()),
             pa.array(["skip", "q", "rs"]).slice(1)]
    for p in parts:
        col.append(p)
    out = col.finish()
    assert out.type == pa.string()
    assert out.to_pylist() == ["a", "bcd", "", "é", "xyzxyzxyzxyzxyzxyz", "q", "rs"]
    assert np.frombuffer(out.buffers()[1], np.int32).tolist() == [0, 1, 4, 4, 6, 24, 25, 27]


def test_rank_and_duplicate_check_in_sorted_order():
    from taast_ray.errors import InputError
    from taast_ray.contracts.pool import _rank_and_check_unique

    ids = pa.array(["c", "a", "d", "b"])
    np.testing.assert_array_equal(_rank_and_check_unique(ids, "x", chunk=2), [2, 0, 3, 1])
    # two duplicated ids: the one seen first in the input is named (as a hash count would)
    ids = pa.array(["z", "m", "q", "b", "m", "z", "q"])
    for chunk in (1, 2, 3, 100):
        with pytest.raises(InputError, match="x: duplicate image_id 'z'"):
            _rank_and_check_unique(ids, "x", chunk=chunk)


def test_row_groups_read_two_at_a_time_come_back_in_file_order(tmp_path):
    from taast_ray.errors import InputError
    from taast_ray.contracts.detections import DetectionsSource

    t = detections_table(230, 3, seed=9)
    pq.write_table(t, tmp_path / "d.parquet", row_group_size=20)
    source = DetectionsSource(tmp_path / "d.parquet")
    assert source.num_rows() == 230
    got = list(source.batches(batch_rows=7, workers=3))
    assert [at for _, at, _ in got] == sorted(at for _, at, _ in got)
    assert pa.concat_tables([b for _, _, b in got]).column("image_id").to_pylist() == \
        t.column("image_id").to_pylist()
    # a bad record in row group 2 and another in row group 9: the first is the one reported
    boxes = t.column("boxes").to_pylist()
    for row in (45, 190):
        boxes[row] = [[5.0, 5.0, 1.0, 9.0]] + boxes[row][1:]
    pq.write_table(t.set_column(1, "boxes", pa.array(boxes, pa.list_(pa.list_(pa.float32())))),
                   tmp_path / "bad.parquet", row_group_size=20)
    with pytest.raises(InputError, match="record 45,"):
        stream_pool(tmp_path / "bad.parquet", 3, 0.8, batch_rows=8, spool_dir=tmp_path)


def test_ordered_parallel_keeps_task_order_and_raises_in_order():
    import time

    from taast_ray.contracts.detections import _ordered_parallel

    def task(i, n, delay, fail=False):
        def run():
            for j in range(n):
                time.sleep(delay)
                yield (i, j)
            if fail:
                raise ValueError(f"task {i}")
        return run

    tasks = [task(0, 3, 0.02), task(1, 2, 0.0), task(2, 0, 0.0), task(3, 2, 0.01)]
    assert list(_ordered_parallel(iter(tasks), 2)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (3, 0), (3, 1)]
    seen = []
    with pytest.raises(ValueError, match="task 1"):
        for item in _ordered_parallel(iter([task(0, 2, 0.02), task(1, 1, 0.0, fail=True), task(2, 5, 0.0)]), 3):
            seen.append(item)
    assert seen == [(0, 0), (0, 1), (1, 0)]


def test_box_index_finds_first_box_rows_from_counts_and_block_starts(monkeypatch):
    from taast_ray.contracts.pool import BoxIndex

    monkeypatch.setattr(BoxIndex, "BLOCK", 4)
    counts = [2, 0, 3, 1, 5, 0, 0, 4, 1]   # first rows 0 2 2 5 | 6 11 11 11 | 15, total 16
    index = BoxIndex(counts)
    assert index.block_start.tolist() == [0, 6, 15, 16] and index.total == 16
    assert index.starts([8, 0, 3, 5, 7, 2, 3]).tolist() == [15, 0, 5, 11, 11, 2, 5]
    assert index.offsets().tolist() == [0, 2, 2, 5, 6, 11, 11, 11, 15, 16]
    assert BoxIndex([]).total == 0
