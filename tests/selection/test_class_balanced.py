"""The literature's box-level class-balanced score (arXiv 2508.17849) as a comparison arm.

a(b) = u(b) · exp(−σ · p(l̂_b)) per box, u(b) = H(p_b) (§2's box entropy), l̂_b = argmax_k s_{k,b},
p(k) = n_k / Σ_j n_j over L ∪ P's counts (eq. 5's n_c); an image ranks by a(x) = max_b a(b)
(the paper's top boxes, each taken with its image), and the arm picks the top B eligible images.
"""
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from taast_ray.cli import main
from taast_ray.config import config_from_dict
from taast_ray.contracts.pool import stream_pool
from taast_ray.data.labels import load_labels
from taast_ray.experiment.config import StrategySpec
from taast_ray.pipeline.precomputed import select_from_detections
from taast_ray.selection import registry, scoring
from taast_ray.selection.candidates import id_rank
from taast_ray.selection.strategies import SelectionContext
from tests.factories import detections_table, read_detections, run_strategy, write_detections, write_labels
from tests.selection.test_scoring import LABELLED, OFFSETS, SCORES, H

NAME = "class-balanced"
RULE = registry.strategy(NAME).rarity_rule
SIGMA = scoring.BALANCE_SIGMA  # 10

# n = L + P = [3, 0, 9] + [1, 1, 0] = [4, 1, 9] (D ∈ P holds classes 0 and 1), Σ n = 14:
# p = [4/14, 1/14, 9/14], f_k = exp(−10 p_k) = [e^(−40/14), e^(−10/14), e^(−90/14)].
P = [4 / 14, 1 / 14, 9 / 14]
F = [math.exp(-SIGMA * p) for p in P]  # ≈ [0.0574, 0.4895, 0.0016]
U_A = [H(0.9, 0.1), H(0.25, 0.25, 0.5)]   # A's boxes: classes 0 and 2; u ≈ 0.3251, 1.0397
U_C = math.log(3)                         # C: one all-zero box, p_b uniform, class 0 (ties → 0)
U_D = [H(0.85 / 0.9, 0.05 / 0.9), H(0.1 / 1.15, 0.95 / 1.15, 0.1 / 1.15)]  # D: classes 0 and 1
U_E = [math.log(2), H(0.3, 0.5, 0.2)]     # E: [.5,.5,0] → class 0; [.3,.5,.2] → class 1


def hand_pool(**kwargs):
    return scoring.score_images(SCORES, OFFSETS, LABELLED, rule=RULE, **kwargs)


def context(scored, ids, budget, seed=1):
    ids = np.asarray(ids, object)
    return SelectionContext(image_ids=ids, tie_rank=id_rank(ids), scored=scored, budget=budget, seed=seed,
                            kmeans_backend="numpy")


def test_hand_values():
    s = hand_pool()
    assert s.class_counts.tolist() == [4, 1, 9]
    np.testing.assert_allclose(s.weights, F, rtol=1e-12)  # the rule's per-class factors
    expected = [
        max(U_A[0] * F[0], U_A[1] * F[2]),  # A: 0.3251·0.0574 = 0.01867 > 1.0397·0.0016 = 0.00168
        0.0,                                # B: no boxes
        U_C * F[0],                         # C: 1.0986·0.0574 = 0.0631
        max(U_D[0] * F[0], U_D[1] * F[1]),  # D (∈ P, scored all the same): 0.5826·0.4895 = 0.2852
        max(U_E[0] * F[0], U_E[1] * F[1]),  # E: 1.0297·0.4895 = 0.5041 > 0.6931·0.0574
    ]
    np.testing.assert_allclose(s.value, expected, rtol=1e-6)
    # weight: the factor of the class whose box gives the max (0 without boxes)
    np.testing.assert_allclose(s.image_weight, [F[0], 0.0, F[0], F[1], F[1]], rtol=1e-12)
    assert s.entropy[0] == pytest.approx(sum(U_A))  # E(x) is still eq. 2's, for scores.parquet


def test_hand_pick_balances_where_entropy_does_not():
    """Eligible: A, B, C, E (D ∈ P). By a: E 0.504 > C 0.063 > A 0.019 > B 0; by E(x): E 1.72 >
    A 1.36 > C 1.10. A's uncertain box is class 2, the most frequent (p = 9/14): the balance
    factor drops it below C, whose box is class 0 (p = 4/14)."""
    ids = ["A", "B", "C", "D", "E"]
    picks = run_strategy(NAME, context(hand_pool(), ids, budget=2))
    assert [ids[r] for r in picks.rows] == ["E", "C"]
    assert not picks.candidate[3] and picks.candidate[picks.rows].all()
    entropy = run_strategy("entropy", context(scoring.score_images(SCORES, OFFSETS, LABELLED), ids, budget=2))
    assert [ids[r] for r in entropy.rows] == ["E", "A"]
    # σ = 0: no balancing, a(x) = max_b H(p_b): C 1.0986 > A 1.0397 > E 1.0297
    flat = hand_pool(balance_sigma=0.0)
    np.testing.assert_allclose(flat.value, [U_A[1], 0, U_C, U_D[1], U_E[1]], rtol=1e-6)
    assert [ids[r] for r in run_strategy(NAME, context(flat, ids, budget=3)).rows] == ["C", "A", "E"]


def random_pool(seed, classes=7, n=160, ties=True):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n)
    offsets = np.r_[0, np.cumsum(counts)]
    scores = (rng.random((offsets[-1], classes)) ** 3).astype(np.float32)
    scores[rng.random(len(scores)) < 0.05] = 0  # all-zero rows: u = ln C, class 0
    if ties:  # a few one-hot boxes (u = 0) and exact duplicates of image 0 (equal a(x))
        scores[rng.random(len(scores)) < 0.05] = np.eye(classes, dtype=np.float32)[0]
    return scores, offsets, rng.integers(0, 30, classes)


def loop_value(scores, offsets, n_c, sigma):
    """a(x) written out image by image, box by box."""
    n_c = np.asarray(n_c, np.float64)
    p = n_c / n_c.sum() if n_c.sum() > 0 else np.full(len(n_c), 1 / len(n_c))
    out = []
    for i in range(len(offsets) - 1):
        best = 0.0
        for row in scores[offsets[i]:offsets[i + 1]].astype(np.float64):
            q = row / row.sum() if row.sum() > 0 else np.full(len(row), 1 / len(row))
            u = -sum(x * math.log(x) for x in q if x > 0)
            best = max(best, u * math.exp(-sigma * p[int(np.argmax(row))]))
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("seed, sigma", [(0, SIGMA), (1, 3.0), (2, 0.0), (3, 50.0), (4, 1e4)])  # 1e4: f underflows
def test_matches_a_plain_loop(seed, sigma):
    scores, offsets, labelled = random_pool(seed)
    s = scoring.score_images(scores, offsets, labelled, tau=0.6, rule=RULE, balance_sigma=sigma)
    np.testing.assert_allclose(s.value, loop_value(scores, offsets, s.class_counts, sigma), rtol=1e-6, atol=1e-12)
    has = np.diff(offsets) > 0
    assert (s.value[~has] == 0).all() and (s.image_weight[~has] == 0).all()
    f = np.exp(-sigma * (s.class_counts / s.class_counts.sum()))
    assert np.isin(s.image_weight[has], f).all()  # the factor of a class some box of x predicts


def test_sigma_zero_ranks_by_the_most_uncertain_box():
    scores, offsets, labelled = random_pool(5)
    s = scoring.score_images(scores, offsets, labelled, rule=RULE, balance_sigma=0.0)
    _, box_h = scoring.box_statistics(scores)
    counts = np.diff(offsets)
    top_box = np.zeros(len(counts))
    has = counts > 0
    top_box[has] = np.maximum.reduceat(box_h.astype(np.float32), offsets[:-1][has])
    np.testing.assert_array_equal(s.value, top_box)  # exp(0) = 1: the float32 max of H(p_b)
    assert (s.image_weight[has] == 1).all()
    ids = np.array([f"im{i:04d}" for i in range(len(counts))], object)
    picks = run_strategy(NAME, context(s, ids, budget=15))
    eligible = np.flatnonzero(~s.pseudo)
    rank = id_rank(ids)
    want = eligible[np.lexsort((rank[eligible], -top_box[eligible]))][:15]
    assert picks.rows.tolist() == want.tolist()


def test_no_counts_give_uniform_p_and_one_class_pools_scale_by_one_factor():
    scores, offsets, _ = random_pool(6, ties=False)
    none = scoring.score_images(scores, offsets, np.zeros(7, int), tau=1.0, rule=RULE)  # P empty, L empty
    flat = scoring.score_images(scores, offsets, np.zeros(7, int), tau=1.0, rule=RULE, balance_sigma=0.0)
    np.testing.assert_allclose(none.value, flat.value * math.exp(-SIGMA / 7), rtol=1e-12)  # p = 1/7 each


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuting_rows_does_not_change_the_picks(seed):
    scores, offsets, labelled = random_pool(seed)
    n = len(offsets) - 1
    ids = np.array([f"im{i:04d}" for i in range(n)], object)
    scores[offsets[1]:offsets[2]] = 0  # keep image 1 a tie for any image whose boxes are all zero
    base = run_strategy(NAME, context(scoring.score_images(scores, offsets, labelled, rule=RULE), ids, 20, seed))
    perm = np.random.default_rng(seed + 7).permutation(n)
    rows = [scores[offsets[i]:offsets[i + 1]] for i in perm]
    p_offsets = np.r_[0, np.cumsum(np.diff(offsets)[perm])]
    moved = run_strategy(NAME, context(scoring.score_images(np.concatenate(rows), p_offsets, labelled, rule=RULE),
                                       ids[perm], 20, seed))
    assert ids[perm][moved.rows].tolist() == ids[base.rows].tolist()
    assert len(base.rows) == 20 == len(set(base.rows.tolist()))


def test_chunked_value_is_the_whole_value(monkeypatch):
    scores, offsets, labelled = random_pool(8)
    whole = scoring.score_images(scores, offsets, labelled, rule=RULE)
    monkeypatch.setattr(scoring, "_RULE_CHUNK", 7)
    chunked = scoring.score_images(scores, offsets, labelled, rule=RULE)
    np.testing.assert_array_equal(chunked.value, whole.value)
    np.testing.assert_array_equal(chunked.image_weight, whole.image_weight)


def test_the_record():
    record = registry.strategy(NAME)
    assert registry.baselines().index(NAME) == 3 and registry.is_baseline(NAME)
    assert record.embeds is None and record.pseudo_labels is False
    assert StrategySpec.from_config(NAME, "strategies").pseudo_labels is False
    assert RULE in scoring.RULE_VECTOR and RULE in registry.RARITY


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    """6,000 images in shuffled order, read in batches smaller than the pool."""
    tmp = tmp_path_factory.mktemp("class_balanced")
    t = detections_table(6_000, 12, seed=11, confident_share=0.15)
    t = t.take(np.random.default_rng(2).permutation(t.num_rows))
    pq.write_table(t, tmp / "det.parquet", row_group_size=900)
    write_labels(tmp / "labels.json", [40, 0, 3, 9, 1, 0, 22, 5, 2, 0, 7, 1])
    return tmp


def test_streamed_selection_is_the_whole_table_selection(shuffled, tmp_path):
    labels = load_labels(shuffled / "labels.json")
    det = read_detections(shuffled / "det.parquet", labels.num_classes)
    scored = scoring.score_images(det.scores, det.offsets, labels.class_counts("images"), rule=RULE)
    picks = run_strategy(NAME, context(scored, det.image_ids, 40, seed=5))
    pool = stream_pool(shuffled / "det.parquet", labels.num_classes, 0.8, batch_rows=700, rule=RULE)
    try:
        r = scoring.reduce_images(det.scores, det.offsets, 0.8, RULE)
        np.testing.assert_array_equal(np.asarray(pool.image_vectors), r.image_vector)
    finally:
        pool.close()
    cfg = config_from_dict({"selection": {"strategy": NAME, "budget": 40, "seed": 5}}).validate()
    summary = select_from_detections(cfg, shuffled / "det.parquet", shuffled / "labels.json", tmp_path / "out")
    assert summary["strategy"] == NAME and summary["selected"] == 40
    sel = pq.read_table(tmp_path / "out" / "selection.parquet").to_pydict()
    scores = pq.read_table(tmp_path / "out" / "scores.parquet")
    order = np.argsort(det.image_ids.astype(str), kind="stable")
    assert scores.column("image_id").to_pylist() == det.image_ids[order].tolist()
    np.testing.assert_array_equal(scores.column("score").to_numpy(zero_copy_only=False), picks.score[order])
    has = scored.candidate_class[order] >= 0
    np.testing.assert_array_equal(scores.column("weight").to_numpy(zero_copy_only=False)[has],
                                  scored.image_weight[order][has])
    np.testing.assert_array_equal(scores.column("entropy").to_numpy(), scored.entropy[order])
    assert sel["image_id"] == det.image_ids[picks.rows].tolist()  # no tie among the top 40 a(x)
    assert sel["score"] == sorted(sel["score"], reverse=True)


def test_taast_select_runs_it_end_to_end(tmp_path, capsys):
    det = write_detections(tmp_path / "det.parquet", 200, 6, seed=4, confident_share=0.2)
    labels = write_labels(tmp_path / "labels.json", [40, 20, 8, 3, 1, 0])
    out = tmp_path / "out"
    assert main([str(a) for a in ("select", "--detections", det, "--labels", labels, "--budget", 12,
                                  "--strategy", NAME, "--seed", 3, "--out", out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == NAME and summary["selected"] == 12 and summary["filled"] == 0
    table = pq.read_table(out / "scores.parquet").to_pydict()
    lab = load_labels(labels)
    d = read_detections(det, lab.num_classes)
    s = scoring.score_images(d.scores, d.offsets, lab.class_counts("images"), rule=RULE)
    by_id = dict(zip(d.image_ids.tolist(), range(len(d.image_ids))))
    rows = np.array([by_id[i] for i in table["image_id"]])
    eligible = ~s.pseudo[rows]
    np.testing.assert_array_equal(np.array(table["score"], float)[eligible], s.value[rows][eligible])
    chosen = np.array(table["selected"])
    assert chosen.sum() == 12 and not (chosen & ~eligible).any()
    value = s.value[rows]
    assert value[chosen].min() >= value[eligible & ~chosen].max()  # the top B eligible by a(x)
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    assert NAME in capsys.readouterr().out


def test_sigma_is_a_configuration_field_the_selection_uses(tmp_path):
    """selection.balance_sigma reaches the score: σ = 0 ranks by the most uncertain box alone."""
    import pyarrow.parquet as pq

    from taast_ray.cli import main
    from tests.factories import write_detections, write_labels

    det = write_detections(tmp_path / "det.parquet", 80, 5, seed=3, confident_share=0.2)
    labels = write_labels(tmp_path / "labels.json", [40, 20, 8, 3, 1])
    values = {}
    for sigma in (0, 10, 40):
        out = tmp_path / f"s{sigma}"
        assert main([str(a) for a in ("select", "--detections", det, "--labels", labels, "--budget", 8,
                                      "--strategy", "class-balanced", "--set", f"selection.balance_sigma={sigma}",
                                      "--out", out)]) == 0
        values[sigma] = pq.read_table(out / "scores.parquet").column("score").to_pylist()
    assert values[0] != values[10] != values[40]
    assert all(a >= b for a, b in zip(values[0], values[10]) if a is not None and b is not None)
