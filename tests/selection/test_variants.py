"""The tail-aware variants (issue 15) against values worked out by hand, and their invariants.

taast-expected: w(x) = Σ_k p_{k,b*} w_k, φ = w(x) · E(x). taast-balanced: TAAST's φ and pick,
at most a cap of the B picks per c(x). (taast-maxrare, w(x) = max_{b,k} w_k · s_{k,b}, tied taast
in study (a), and taast-expected-balanced, the first's φ with the second's cap, fell below the
first; both were dropped: their records in selection/registry.py say why.)
"""
import math

import numpy as np
import pytest

from taast_ray.selection import scoring
from taast_ray.selection.candidates import id_rank
from taast_ray.selection.strategies import SelectionContext, capped_take, class_cap, occurrence_index
from tests.selection.test_scoring import LABELLED, OFFSETS, SCORES, H
from tests.selection.test_strategies import check_diverse_pick, context
from tests.factories import run_strategy

# L + P = [4, 1, 9] (D ∈ P holds classes 0 and 1): w = 1/ln 5, 1/ln 2, 1/ln 10
W = [1 / math.log(5), 1 / math.log(2), 1 / math.log(10)]
E_A = H(0.9, 0.1) + H(0.25, 0.25, 0.5)
E_C = math.log(3)
E_D = H(0.85 / 0.9, 0.05 / 0.9) + H(0.1 / 1.15, 0.95 / 1.15, 0.1 / 1.15)
E_E = math.log(2) + H(0.3, 0.5, 0.2)


def test_expected_rarity_hand_values():
    s = scoring.score_images(SCORES, OFFSETS, LABELLED, rule="expected")
    expected_w = [
        0.25 * W[0] + 0.25 * W[1] + 0.5 * W[2],  # A: b* = [.2, .2, .4] → p = [.25, .25, .5]
        0.0,                                     # B: no boxes
        (W[0] + W[1] + W[2]) / 3,                # C: an all-zero row → p uniform
        (0.85 * W[0] + 0.05 * W[1]) / 0.9,       # D: b* = [.85, .05, 0]
        0.5 * W[0] + 0.5 * W[1],                 # E: b* = [.5, .5, 0] (the tie's first box)
    ]
    np.testing.assert_allclose(s.image_weight, expected_w, rtol=1e-6)
    np.testing.assert_allclose(s.value, np.array(expected_w) * [E_A, 0, E_C, E_D, E_E], rtol=1e-6)
    assert s.class_counts.tolist() == [4, 1, 9]


def random_pool(seed, classes=7, n=150):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n)
    offsets = np.r_[0, np.cumsum(counts)]
    scores = (rng.random((offsets[-1], classes)) ** 3).astype(np.float32)
    scores[rng.random(len(scores)) < 0.05] = 0
    return scores, offsets, rng.integers(0, 30, classes)


@pytest.mark.parametrize("seed", [0, 1])
def test_expected_rarity_matches_a_plain_loop(seed):
    scores, offsets, labelled = random_pool(seed)
    s = scoring.score_images(scores, offsets, labelled, tau=0.6, rule="expected")
    w = s.weights
    for i in range(len(offsets) - 1):
        rows = scores[offsets[i]:offsets[i + 1]].astype(np.float64)
        if len(rows) == 0:
            assert s.image_weight[i] == 0 and s.value[i] == 0
            continue
        b = int(np.argmin(rows.max(axis=1)))
        p = rows[b] / rows[b].sum() if rows[b].sum() > 0 else np.full(len(w), 1 / len(w))
        want = float(sum(p[k] * w[k] for k in range(len(w))))
        assert s.image_weight[i] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert s.value[i] == pytest.approx(want * s.entropy[i], rel=1e-9, abs=1e-12)


def test_equal_weights_reduce_expected_to_taast():
    scores, offsets, _ = random_pool(3)
    equal = np.full(scores.shape[1], 5)  # every n_c = 5 (τ = 1: no score reaches it, P is empty)
    taast = scoring.score_images(scores, offsets, equal, tau=1.0)
    expected = scoring.score_images(scores, offsets, equal, tau=1.0, rule="expected")
    np.testing.assert_allclose(expected.value, taast.value, rtol=1e-12)  # Σ_k p_k w = w


def test_one_hot_boxes_make_expected_the_paper_weight_and_bound_it():
    scores, offsets, labelled = random_pool(4)
    one_hot = np.zeros_like(scores)
    one_hot[np.arange(len(scores)), scores.argmax(axis=1)] = 1.0
    taast = scoring.score_images(one_hot, offsets, labelled)
    expected = scoring.score_images(one_hot, offsets, labelled, rule="expected")
    np.testing.assert_allclose(expected.value, taast.value, rtol=1e-12)
    ordinary = scoring.score_images(scores, offsets, labelled)
    has = ordinary.candidate_class >= 0
    expected = scoring.score_images(scores, offsets, labelled, rule="expected")
    w = ordinary.weights
    assert (expected.image_weight[has] >= w.min() - 1e-12).all()
    assert (expected.image_weight[has] <= w.max() + 1e-12).all()


def test_occurrence_index_and_cap():
    assert occurrence_index(np.array([2, 0, 2, 2, 0, -1])).tolist() == [0, 0, 1, 2, 1, 0]
    assert class_cap(10, np.array([0, 1, 1, 2, -1])) == 4  # ⌈10 / 3⌉
    assert class_cap(10, np.array([0, 1, 1, 2, -1]), setting=3) == 3
    assert class_cap(5, np.array([-1, -1])) == 5


def test_capped_take_fills_from_the_next_best_when_classes_run_out():
    priority = np.array([10, 11, 12, 13, 14, 15])
    classes = np.zeros(16, np.int64)
    classes[[10, 11, 12, 13, 14, 15]] = [0, 0, 0, 1, -1, 1]
    rows, relaxed = capped_take(priority, classes, cap=2, budget=4)
    assert rows.tolist() == [10, 11, 13, 14] and relaxed == 0  # 12 is a third class-0 pick
    rows, relaxed = capped_take(priority, classes, cap=2, budget=6)
    assert rows.tolist() == [10, 11, 13, 14, 15, 12] and relaxed == 1
    rows, relaxed = capped_take(priority, classes, cap=1, budget=3)
    assert rows.tolist() == [10, 13, 14] and relaxed == 0


def test_balanced_caps_each_class_and_is_taast_without_a_binding_cap():
    ctx, emb = context(n=120, classes=4, budget=12, seed=2)
    taast = run_strategy("taast", ctx)
    ctx.class_cap = 12  # a cap that never binds: TAAST's pick exactly
    loose = run_strategy("taast-balanced", ctx)
    assert loose.rows.tolist() == taast.rows.tolist() and loose.info["cap_replaced"] == 0
    check_diverse_pick(ctx, emb, loose)
    for cap in (0, 2):
        ctx.class_cap = cap
        picks = run_strategy("taast-balanced", ctx)
        classes = ctx.scored.candidate_class[picks.rows]
        limit = picks.info["class_cap"]
        assert limit == (cap or -(-12 // len(np.unique(ctx.scored.candidate_class[picks.candidate][
            ctx.scored.candidate_class[picks.candidate] >= 0]))))
        counts = np.bincount(classes[classes >= 0])
        assert len(picks.rows) == 12 == len(set(picks.rows.tolist()))
        assert picks.candidate[picks.rows].all()
        assert counts.max() <= limit or picks.info["cap_relaxed"] > 0
        assert picks.info["cap_replaced"] == len(set(taast.rows) - set(picks.rows))


def test_balanced_spreads_a_pool_where_one_class_holds_the_top():
    """Class 0 holds the uncertain boxes, so 60 of the 70 candidates: TAAST's pick leans to it;
    the cap ⌈8 / 4⌉ = 2 takes 2 of each class (the 10 others: 4, 3 and 3 of classes 1–3)."""
    n, classes, budget = 100, 4, 8
    scores = np.full((n, classes), 0.05, np.float32)
    for i in range(n):
        k = 0 if i < 60 else 1 + i % 3
        scores[i, k] = 0.5 if k == 0 else 0.7 - 0.001 * i
    ids = np.array([f"im{i:03d}" for i in range(n)], object)
    emb = {i: v for i, v in zip(ids, np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32))}
    scored = scoring.score_images(scores, np.arange(n + 1), np.zeros(classes, int), tau=0.9)
    ctx = SelectionContext(image_ids=ids, tie_rank=id_rank(ids), scored=scored, budget=budget, seed=1,
                           candidate_fraction=0.7, kmeans_backend="numpy",
                           embed=lambda wanted: np.stack([emb[i] for i in wanted]))
    taast = run_strategy("taast", ctx)
    balanced = run_strategy("taast-balanced", ctx)
    assert (scored.candidate_class[taast.rows] == 0).sum() > 2
    assert balanced.info["class_cap"] == 2 and balanced.info["cap_relaxed"] == 0
    assert np.bincount(scored.candidate_class[balanced.rows], minlength=classes).tolist() == [2, 2, 2, 2]
    ctx.class_cap = 5  # a configured cap: 5 of class 0 at most, the rest by φ
    capped = run_strategy("taast-balanced", ctx)
    assert (scored.candidate_class[capped.rows] == 0).sum() <= 5 and capped.info["class_cap"] == 5


def test_variant_strategy_refuses_scores_without_its_rule():
    ctx, _ = context(n=40, budget=3)
    with pytest.raises(ValueError, match="rarity rule"):
        run_strategy("taast-expected", ctx)


def test_weight_of_is_w_of_the_candidate_class_or_the_variants_own():
    """The weight scores.parquet and report.html show: w_{c(x)} under the paper's rule, a
    variant's w(x) under its rule, 0 for an image without a class (hand values)."""
    base = dict(entropy=np.array([1.0, 2.0, 0.0]), candidate_class=np.array([1, 0, -1]),
                least_confident=None, pseudo=np.zeros(3, bool), class_counts=np.zeros(2, np.int64),
                weights=np.array([0.5, 0.25]), value=np.zeros(3), confidence=None)
    paper = scoring.ImageScores(**base)
    assert paper.weight_of([0, 1, 2]).tolist() == [0.25, 0.5, 0.0]
    variant = scoring.ImageScores(**base, image_weight=np.array([0.4, 0.3, 0.0]))
    assert variant.weight_of([2, 0]).tolist() == [0.0, 0.4]

