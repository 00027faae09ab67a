"""The seeded tie-break (issue 16): a hash of image_id, deterministic per seed, not name order."""

import numpy as np
import pyarrow as pa

from taast_ray.selection.candidates import _mix64, seeded_id_hash, seeded_tie_rank

IDS = [f"frame_{i:04d}.jpg" for i in range(500)] + ["", "é/ü.png", "a" * 300]


def _reference_hash(text: str, seed: int) -> int:
    """FNV-1a 64 from the seeded basis, one byte at a time, then splitmix64's finaliser."""
    h = int(_mix64(np.array([seed], np.uint64) ^ np.uint64(0xCBF29CE484222325))[0])
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) % (1 << 64)
    return int(_mix64(np.array([h], np.uint64))[0])


def test_the_vectorised_hash_equals_the_byte_loop():
    got = seeded_id_hash(pa.array(IDS), 42)
    assert [int(v) for v in got] == [_reference_hash(t, 42) for t in IDS]


def test_tie_rank_is_a_permutation_independent_of_row_order():
    rank = seeded_tie_rank(IDS, 3)
    assert sorted(rank.tolist()) == list(range(len(IDS)))
    perm = np.random.default_rng(0).permutation(len(IDS))
    shuffled = seeded_tie_rank([IDS[i] for i in perm], 3)
    assert shuffled.tolist() == rank[perm].tolist()


def test_tie_order_changes_with_the_seed_and_is_not_the_name_order():
    first = [IDS[i] for i in np.argsort(seeded_tie_rank(IDS, 1))[:20]]
    again = [IDS[i] for i in np.argsort(seeded_tie_rank(IDS, 1))[:20]]
    other = [IDS[i] for i in np.argsort(seeded_tie_rank(IDS, 2))[:20]]
    assert first == again and first != other
    assert first != sorted(IDS)[:20] and first != sorted(first)


def test_a_sliced_arrow_array_hashes_its_own_rows():
    whole = pa.array(IDS)
    assert seeded_id_hash(whole.slice(10, 5), 9).tolist() == seeded_id_hash(whole, 9)[10:15].tolist()


def test_the_seeded_tie_rank_hashed_in_chunks_equals_one_pass(monkeypatch):
    """Hashing image_ids a chunk at a time (flat memory) gives the same ranks as one pass."""
    import taast_ray.selection.candidates as candidates

    ids = [f"frame_{i:07d}.jpg" for i in range(5000)] + ["a", "", "ééé/long/" * 5]
    whole = candidates.seeded_tie_rank(ids, 7)
    monkeypatch.setattr(candidates, "HASH_CHUNK", 1000)
    chunked = candidates.seeded_tie_rank(ids, 7)
    assert chunked.tolist() == whole.tolist() and sorted(whole.tolist()) == list(range(len(ids)))
