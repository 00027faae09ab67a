"""Strategies: candidates (eq. 8), the diversity pick (eqs. 9–11), baselines and the fill rule."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from taast_ray.selection.candidates import candidate_count, id_rank, top_candidates
from taast_ray.selection.scoring import score_images
from taast_ray.selection.strategies import SelectionContext, normalise_rows
from tests.factories import run_strategy


@pytest.mark.parametrize("n, q, b, expected", [(100, 0.2, 3, 20), (100, 0.2, 50, 50), (5, 0.2, 1, 1),
                                               (3, 0.2, 10, 3), (1_000_000, 0.2, 256, 200_000),
                                               (101, 0.2, 1, 21)])
def test_candidate_count(n, q, b, expected):
    assert candidate_count(n, q, b) == expected


def test_candidates_ranked_by_value_then_image_id():
    ids = np.array(["d", "b", "a", "c", "e"], dtype=object)
    value = np.array([1.0, 2.0, 1.0, 1.0, 9.0])
    eligible = np.array([True, True, True, True, False])
    rows = top_candidates(value, eligible, id_rank(ids), fraction=0.5, budget=3)
    assert ids[rows].tolist() == ["b", "a", "c"]  # e is not eligible; ties at 1.0 by id


def context(n=60, classes=4, budget=5, seed=0, pseudo_share=0.1, dim=8, perm=None):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n)
    offsets = np.r_[0, np.cumsum(counts)]
    scores = (rng.random((offsets[-1], classes)) ** 3 * 0.7).astype(np.float32)
    sharp = rng.random(n) < pseudo_share
    for i in np.flatnonzero(sharp & (counts > 0)):
        scores[offsets[i]:offsets[i + 1], 0] = 0.95
    ids = np.array([f"im{i:04d}" for i in range(n)], dtype=object)
    emb = {i: v for i, v in zip(ids, rng.normal(size=(n, dim)).astype(np.float32))}
    if perm is not None:  # the same images, rows in another order
        rows = [scores[offsets[i]:offsets[i + 1]] for i in perm]
        counts = counts[perm]
        offsets = np.r_[0, np.cumsum(counts)]
        scores = np.concatenate(rows) if rows else scores
        ids = ids[perm]
    scored = score_images(scores, offsets, np.zeros(classes, int))
    ctx = SelectionContext(image_ids=ids, tie_rank=id_rank(ids), scored=scored, budget=budget,
                           seed=seed, kmeans_backend="numpy",
                           embed=lambda wanted: np.stack([emb[i] for i in wanted]))
    return ctx, emb


def check_diverse_pick(ctx, emb, picks):
    """B distinct candidates, one per cluster, each the member nearest its cluster's mean."""
    assert len(picks.rows) == ctx.budget == len(set(picks.rows.tolist()))
    chosen = picks.rows[~picks.fill]
    assert picks.candidate[chosen].all()
    clusters = picks.cluster[chosen]
    assert len(set(clusters.tolist())) == len(chosen)
    for row, j in zip(chosen, clusters):
        members = np.flatnonzero(picks.cluster == j)
        z = normalise_rows(np.stack([emb[i] for i in ctx.image_ids[members]]))
        dist = np.linalg.norm(z - z.mean(axis=0), axis=1)
        best = members[np.isclose(dist, dist.min(), rtol=0, atol=1e-6)]
        assert row == best[np.argmin(ctx.tie_rank[best])]


def test_taast_pick_is_one_per_cluster_nearest_the_mean():
    ctx, emb = context(n=80, budget=6)
    picks = run_strategy("taast", ctx)
    check_diverse_pick(ctx, emb, picks)
    assert picks.candidate.sum() == max(int(np.ceil(0.2 * (~ctx.scored.pseudo).sum())), 6)
    assert not ctx.scored.pseudo[picks.rows].any()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(12, 70), budget=st.integers(1, 8), seed=st.integers(0, 10_000),
       strategy=st.sampled_from(["taast", "taast-no-rarity", "taast-no-diversity", "entropy",
                                 "random", "coreset", "taast-balanced"]))
def test_properties_any_strategy(n, budget, seed, strategy):
    ctx, emb = context(n=n, budget=budget, seed=seed, pseudo_share=0.3)
    picks = run_strategy(strategy, ctx)
    assert len(picks.rows) == budget == len(set(picks.rows.tolist()))
    if strategy.startswith("taast") and strategy not in ("taast-no-diversity", "taast-balanced"):
        check_diverse_pick(ctx, emb, picks)
    again = run_strategy(strategy, context(n=n, budget=budget, seed=seed, pseudo_share=0.3)[0])
    assert again.rows.tolist() == picks.rows.tolist()  # same seed, same selection
    perm = np.random.default_rng(seed + 1).permutation(n)
    shuffled, _ = context(n=n, budget=budget, seed=seed, pseudo_share=0.3, perm=perm)
    moved = run_strategy(strategy, shuffled)
    assert shuffled.image_ids[moved.rows].tolist() == ctx.image_ids[picks.rows].tolist()


def test_fill_when_fewer_eligible_than_budget():
    ctx, _ = context(n=30, budget=12, pseudo_share=0.9, seed=4)
    eligible = int((~ctx.scored.pseudo).sum())
    assert eligible < 12
    for strategy in ("taast", "entropy", "coreset"):
        picks = run_strategy(strategy, ctx)
        assert len(picks.rows) == 12 and len(set(picks.rows.tolist())) == 12
        assert picks.fill.sum() == 12 - eligible
        assert ctx.scored.pseudo[picks.rows[picks.fill]].all()
        assert not ctx.scored.pseudo[picks.rows[~picks.fill]].any()


def test_entropy_is_top_b_by_entropy():
    ctx, _ = context(n=50, budget=7)
    picks = run_strategy("entropy", ctx)
    eligible = np.flatnonzero(~ctx.scored.pseudo)
    best = eligible[np.argsort(-ctx.scored.entropy[eligible], kind="stable")][:7]
    assert sorted(picks.rows.tolist()) == sorted(best.tolist())
    np.testing.assert_allclose(picks.score, ctx.scored.entropy)


def test_random_covers_the_whole_pool_and_depends_on_seed():
    ctx, _ = context(n=200, budget=20, pseudo_share=0.5)
    rows = {tuple(sorted(run_strategy("random", ctx).rows.tolist()))}
    ctx.seed = 1
    rows.add(tuple(sorted(run_strategy("random", ctx).rows.tolist())))
    assert len(rows) == 2
    hits = np.zeros(200)
    for seed in range(60):
        ctx.seed = seed
        hits[run_strategy("random", ctx).rows] += 1
    assert hits[ctx.scored.pseudo].sum() > 0  # random draws from U, P included


def test_rarity_changes_the_ranking():
    ctx, _ = context(n=120, budget=5, seed=7)
    taast = run_strategy("taast-no-diversity", ctx)
    np.testing.assert_allclose(taast.score, ctx.scored.value)
    assert not np.allclose(ctx.scored.value, ctx.scored.entropy)


def test_coreset_starts_from_labelled_embeddings():
    ctx, emb = context(n=40, budget=3, pseudo_share=0.0)
    eligible_ids = ctx.image_ids
    first_unlabelled = run_strategy("coreset", ctx)
    assert first_unlabelled.info["coreset_start"] == "random"
    labelled = np.stack([emb[i] for i in eligible_ids[:10]]) * 5.0
    ctx.labelled_embeddings = lambda: labelled
    picks = run_strategy("coreset", ctx)
    assert picks.info["coreset_start"] == "labelled"
    z = normalise_rows(np.stack([emb[i] for i in eligible_ids]))
    zl = normalise_rows(labelled)
    far = np.min(np.linalg.norm(z[:, None] - zl[None], axis=-1), axis=1)
    assert picks.rows[0] == int(np.argmax(far))  # the farthest from L comes first
    assert np.isfinite(picks.score[picks.rows]).all()


def test_every_configured_strategy_has_a_function():
    from taast_ray.selection.registry import REGISTRY, names

    assert {n for n, s in REGISTRY.items() if s.select is not None} == set(names())
