"""Eqs. 1–7 against values worked out by hand from SPEC.md §2."""
import math

import numpy as np
import pytest

from taast_ray.selection import scoring


def H(*p):
    """Entropy of an already-normalised distribution, written out term by term."""
    return -sum(x * math.log(x) for x in p if x > 0)


# Five images, C = 3. A: two boxes; B: none; C: one all-zero box; D: two confident boxes (∈ P);
# E: two boxes tied at confidence 0.5.
SCORES = np.array([
    [0.9, 0.1, 0.0], [0.2, 0.2, 0.4],     # A
    [0.0, 0.0, 0.0],                      # C
    [0.85, 0.05, 0.0], [0.1, 0.95, 0.1],  # D
    [0.5, 0.5, 0.0], [0.3, 0.5, 0.2],     # E
], dtype=np.float32)
OFFSETS = np.array([0, 2, 2, 3, 5, 7])
LABELLED = np.array([3, 0, 9])  # images of L per class


def test_box_confidence_and_entropy():
    confidence, entropy = scoring.box_statistics(SCORES)
    np.testing.assert_allclose(confidence, [0.9, 0.4, 0, 0.85, 0.95, 0.5, 0.5])
    expected = [H(0.9, 0.1), H(0.25, 0.25, 0.5), math.log(3),  # all-zero row → uniform → ln C
                H(0.85 / 0.9, 0.05 / 0.9), H(0.1 / 1.15, 0.95 / 1.15, 0.1 / 1.15),
                math.log(2), H(0.3, 0.5, 0.2)]
    np.testing.assert_allclose(entropy, expected, rtol=1e-6)


def test_image_entropy_sums_boxes_and_is_zero_without_boxes():
    e = scoring.image_entropy(scoring.box_statistics(SCORES)[1], OFFSETS)
    np.testing.assert_allclose(e, [H(0.9, 0.1) + H(0.25, 0.25, 0.5), 0.0, math.log(3),
                                   H(0.85 / 0.9, 0.05 / 0.9) + H(0.1 / 1.15, 0.95 / 1.15, 0.1 / 1.15),
                                   math.log(2) + H(0.3, 0.5, 0.2)], rtol=1e-6)


def test_least_confident_box_and_candidate_class():
    conf = scoring.box_statistics(SCORES)[0]
    b_star = scoring.least_confident_box(conf, OFFSETS)
    assert b_star.tolist() == [1, -1, 2, 3, 5]  # E: tie at 0.5 → lowest box index
    # A: argmax [.2,.2,.4] = 2; C: all zeros → lowest class 0; E: [.5,.5,0] tie → 0
    assert scoring.candidate_class(SCORES, b_star).tolist() == [2, -1, 0, 0, 0]


def test_pseudo_labels_need_every_box_confident_and_at_least_one_box():
    conf = scoring.box_statistics(SCORES)[0]
    assert scoring.pseudo_labelled(conf, OFFSETS, 0.8).tolist() == [False, False, False, True, False]
    assert scoring.pseudo_labelled(conf, OFFSETS, 0.85).tolist() == [False, False, False, True, False]
    assert scoring.pseudo_labelled(conf, OFFSETS, 0.86).tolist() == [False] * 5  # 0.85 < τ


def test_pseudo_class_counts_images_and_boxes():
    reduced = scoring.reduce_images(SCORES, OFFSETS, tau=0.8)
    assert reduced.pseudo.tolist() == [False, False, False, True, False]
    assert reduced.pseudo_counts["images"].tolist() == [1, 1, 0]
    two_same = np.array([[0.9, 0, 0], [0.95, 0, 0]], np.float32)
    counts = scoring.reduce_images(two_same, np.array([0, 2]), tau=0.8).pseudo_counts
    assert counts["images"].tolist() == [1, 0, 0]
    assert counts["boxes"].tolist() == [2, 0, 0]


def test_rarity_weight_floor_gives_unseen_classes_the_singleton_weight():
    w = scoring.rarity_weight(np.array([0, 1, 4, 9]), beta=1.0)
    np.testing.assert_allclose(w, [1 / math.log(2), 1 / math.log(2), 1 / math.log(5), 1 / math.log(10)])
    assert np.isfinite(scoring.rarity_weight(np.array([0]), beta=0.0)).all()


def test_score_images_end_to_end_hand_values():
    s = scoring.score_images(SCORES, OFFSETS, LABELLED, tau=0.8, beta=1.0)
    assert s.class_counts.tolist() == [4, 1, 9]  # L + P (D holds classes 0 and 1)
    w = [1 / math.log(5), 1 / math.log(2), 1 / math.log(10)]
    e_a = H(0.9, 0.1) + H(0.25, 0.25, 0.5)
    e_e = math.log(2) + H(0.3, 0.5, 0.2)
    e_d = H(0.85 / 0.9, 0.05 / 0.9) + H(0.1 / 1.15, 0.95 / 1.15, 0.1 / 1.15)
    np.testing.assert_allclose(s.value, [w[2] * e_a, 0.0, w[0] * math.log(3), w[0] * e_d, w[0] * e_e],
                               rtol=1e-6)
    no_rarity = scoring.score_images(SCORES, OFFSETS, LABELLED, use_rarity=False)
    np.testing.assert_allclose(no_rarity.value, no_rarity.entropy)


def test_all_images_pseudo_labelled():
    scores = np.array([[0.9, 0.0], [0.0, 0.99]], np.float32)
    s = scoring.score_images(scores, np.array([0, 1, 2]), np.array([0, 0]))
    assert s.pseudo.all()
    assert s.class_counts.tolist() == [1, 1]


def test_empty_table_and_no_boxes_anywhere():
    s = scoring.score_images(np.zeros((0, 4), np.float32), np.array([0, 0, 0]), np.zeros(4, int))
    assert s.entropy.tolist() == [0, 0] and s.value.tolist() == [0, 0]
    assert s.candidate_class.tolist() == [-1, -1] and not s.pseudo.any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, 200)
    offsets = np.r_[0, np.cumsum(counts)]
    scores = rng.random((offsets[-1], 7)).astype(np.float32) ** 3
    scores[rng.random(len(scores)) < 0.05] = 0
    s = scoring.score_images(scores, offsets, rng.integers(0, 30, 7), tau=0.6)
    for i in range(len(counts)):
        rows = scores[offsets[i]:offsets[i + 1]].astype(np.float64)
        if len(rows) == 0:
            assert s.value[i] == 0 and s.candidate_class[i] == -1
            continue
        ent = 0.0
        for r in rows:
            p = r / r.sum() if r.sum() > 0 else np.full(7, 1 / 7)
            ent += -sum(x * math.log(x) for x in p if x > 0)
        conf = rows.max(axis=1)
        b = int(np.argmin(conf))
        assert s.entropy[i] == pytest.approx(ent, rel=1e-6, abs=1e-9)
        assert s.candidate_class[i] == int(np.argmax(rows[b]))
        assert s.pseudo[i] == bool(conf.min() >= 0.6)
