"""k-center greedy (core-set baseline) on hand-made data with known pick orders."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taast_ray.selection import coreset
from taast_ray.selection.coreset import k_center_greedy


def _reference(pool, budget, labelled, first, rank):
    """Plain k-center greedy in float64 with direct differences, for comparison."""
    pool = pool.astype(np.float64)
    picks = [] if first is None else [first]
    min_d2 = np.full(len(pool), np.inf)
    for c in ([] if labelled is None else labelled.astype(np.float64)):
        min_d2 = np.minimum(min_d2, ((pool - c) ** 2).sum(1))
    for p in picks:
        min_d2 = np.minimum(min_d2, ((pool - pool[p]) ** 2).sum(1))
    while len(picks) < min(budget, len(pool)):
        best = min((i for i in range(len(pool)) if i not in picks),
                   key=lambda i: (-min_d2[i], rank[i]))
        picks.append(best)
        min_d2 = np.minimum(min_d2, ((pool - pool[best]) ** 2).sum(1))
    return picks


def _first_random(n, seed, rank):
    return int(np.argsort(rank, kind="stable")[np.random.default_rng(seed).integers(n)])


def test_one_d_with_labelled_point():
    pool = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]], np.float32)
    labelled = np.array([[0.0]], np.float32)
    # 10 is farthest from 0; then 3; then 1 and 2 tie at distance 1 → tie_rank decides
    assert k_center_greedy(pool, 5, labelled=labelled, seed=0,
                           tie_rank=np.arange(5)).tolist() == [4, 3, 1, 2, 0]
    assert k_center_greedy(pool, 5, labelled=labelled, seed=0,
                           tie_rank=np.arange(5)[::-1].copy()).tolist() == [4, 3, 2, 1, 0]
    assert k_center_greedy(pool, 2, labelled=labelled, seed=0,
                           tie_rank=np.arange(5)).tolist() == [4, 3]


def test_two_d_square_from_labelled_centre():
    # corners of a square and its centre; the labelled point is the centre, so every corner
    # stays at d² = 50 from it and each step is a tie that tie_rank settles; the centre comes last
    pool = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5]], np.float32)
    rank = np.array([3, 0, 2, 1, 4])
    out = k_center_greedy(pool, 5, labelled=np.array([[5, 5]], np.float32), seed=0, tie_rank=rank)
    assert out.tolist() == [1, 3, 2, 0, 4]


@pytest.mark.parametrize("seed", range(6))
def test_without_labelled_starts_from_seeded_pick(seed):
    pool = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5], [1, 1]], np.float32)
    rank = np.array([5, 1, 4, 0, 2, 3])
    first = _first_random(6, seed, rank)
    out = k_center_greedy(pool, 6, labelled=None, seed=seed, tie_rank=rank)
    assert out[0] == first
    assert out.tolist() == _reference(pool, 6, None, first, rank)
    empty = np.zeros((0, 2), np.float32)
    np.testing.assert_array_equal(out, k_center_greedy(pool, 6, labelled=empty, seed=seed,
                                                       tie_rank=rank))


def test_deterministic_and_seed_dependent():
    pool = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    rank = np.arange(200)
    a = k_center_greedy(pool, 20, labelled=None, seed=1, tie_rank=rank)
    np.testing.assert_array_equal(a, k_center_greedy(pool, 20, labelled=None, seed=1,
                                                     tie_rank=rank))
    firsts = {int(k_center_greedy(pool, 1, labelled=None, seed=s, tie_rank=rank)[0])
              for s in range(10)}
    assert len(firsts) > 1


def test_budget_at_least_pool_returns_all_in_greedy_order():
    pool = np.array([[0.0], [4.0], [1.0], [4.0], [9.0]], np.float32)  # with a duplicate
    rank = np.arange(5)
    out = k_center_greedy(pool, 50, labelled=np.array([[0.0]], np.float32), seed=0,
                          tie_rank=rank)
    assert sorted(out.tolist()) == list(range(5))
    assert out.tolist() == _reference(pool, 5, np.array([[0.0]]), None, rank)
    assert k_center_greedy(pool, 0, labelled=None, seed=0, tie_rank=rank).tolist() == []


def test_start_does_not_depend_on_row_order():
    rng = np.random.default_rng(3)
    pool = rng.integers(-20, 20, size=(40, 3)).astype(np.float32)
    rank = rng.permutation(40)
    perm = rng.permutation(40)
    a = k_center_greedy(pool, 15, labelled=None, seed=7, tie_rank=rank)
    b = k_center_greedy(pool[perm], 15, labelled=None, seed=7, tie_rank=rank[perm])
    np.testing.assert_array_equal(a, perm[b])


def test_many_labelled_points_chunked(monkeypatch):
    monkeypatch.setattr(coreset, "_CHUNK_ELEMENTS", 4096 * 64)  # 64-row pool blocks
    rng = np.random.default_rng(5)
    pool = rng.standard_normal((300, 6)).astype(np.float32)
    labelled = rng.standard_normal((5000, 6)).astype(np.float32)
    rank = np.arange(300)
    out = k_center_greedy(pool, 10, labelled=labelled, seed=0, tie_rank=rank)
    assert out.tolist() == _reference(pool, 10, labelled, None, rank)


def test_rejects_mismatched_labelled():
    pool = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError):
        k_center_greedy(pool, 2, labelled=np.zeros((2, 3), np.float32), seed=0,
                        tie_rank=np.arange(3))
    with pytest.raises(ValueError):
        k_center_greedy(pool, 2, labelled=None, seed=0, tie_rank=np.arange(2))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 3), st.integers(0, 14), st.booleans(),
       st.integers(0, 2**32 - 1), st.data())
def test_matches_reference(n, d, budget, with_labelled, seed, data):
    ints = st.lists(st.integers(-3, 3), min_size=n * d, max_size=n * d)
    pool = np.array(data.draw(ints), np.float32).reshape(n, d)
    rank = np.array(data.draw(st.permutations(range(n))))
    labelled = None
    if with_labelled:
        m = data.draw(st.integers(1, 4))
        labelled = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=m * d,
                                               max_size=m * d)), np.float32).reshape(m, d)
    out = k_center_greedy(pool, budget, labelled=labelled, seed=seed, tie_rank=rank)
    first = None if with_labelled or budget == 0 else _first_random(n, seed, rank)
    expected = _reference(pool, budget, labelled, first, rank) if budget else []
    assert out.tolist() == expected
