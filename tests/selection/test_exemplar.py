"""Exemplar rarity (selection/exemplar.py and scoring's "exemplar" rule) against hand-computed values."""
import math

import numpy as np
import pytest

from taast_ray.selection import registry, scoring
from taast_ray.selection.exemplar import (Prototypes, box_posterior, centred, class_prototypes,
                                          image_max)


def test_centred_rows_are_unit_after_subtracting_the_mean():
    x = centred(np.array([[3.0, 1.0], [1.0, 1.0]]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(x, [[1.0, 0.0], [0.0, 0.0]])  # a row equal to μ stays 0


def test_prototypes_average_the_centred_unit_features_of_each_class():
    # mean of the three rows is (0, 0); unit rows (1, 0), (0, 1), (−1/√2, −1/√2)
    protos = class_prototypes(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), np.array([0, 0, 1]), 3)
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(protos.mean, [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(protos.vectors, [[r, r], [-r, -r], [0.0, 0.0]], atol=1e-6)
    assert protos.counts.tolist() == [2, 1, 0] and protos.present.tolist() == [True, True, False]


def test_posterior_is_a_softmax_of_cosines_over_the_present_classes():
    # L: four boxes whose mean is (1, 1), centred to (1,0), (−1,0), (0,1), (0,−1); class 4 has none
    protos = class_prototypes(np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 2.0], [1.0, 0.0]]),
                              np.array([0, 1, 2, 3]), 5, temperature=0.5)
    # a pool box at (3, 1): centred (2, 0) → (1, 0); cosines (1, −1, 0, 0); / T = (2, −2, 0, 0)
    q = box_posterior(np.array([[3.0, 1.0]]), protos)
    z = math.exp(2) + math.exp(-2) + 2
    np.testing.assert_allclose(q, [[math.exp(2) / z, math.exp(-2) / z, 1 / z, 1 / z, 0.0]], rtol=1e-6)
    assert box_posterior(np.zeros((0, 2)), protos).shape == (0, 5)


def test_prototypes_round_trip_through_plain_lists():
    protos = class_prototypes(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]), 2, temperature=0.2)
    back = Prototypes.from_dict(protos.to_dict())
    np.testing.assert_array_equal(back.vectors, protos.vectors)
    assert back.temperature == 0.2 and back.counts.tolist() == [1, 1]


def test_image_row_is_the_largest_posterior_of_each_class_over_its_boxes():
    q = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.6, 0.0, 0.4]], np.float32)
    v = image_max(q, np.array([0, 2, 2, 3]))  # image 1 has no boxes
    np.testing.assert_allclose(v, [[0.9, 0.5, 0.3], [0, 0, 0], [0.6, 0.0, 0.4]])


def test_exemplar_rule_weights_by_the_rarest_class_a_box_resembles():
    # v rows of two images; w = (0.2, 1.0, 0.5) → w(x) = max_k v_k w_k = max(0.18, 0.1, 0) = 0.18,
    # max(0.04, 0.5, 0.15) = 0.5; an image without boxes gets 0
    v = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.0, 0.0, 0.0]])
    w = scoring.image_rarity(v, np.array([0.2, 1.0, 0.5]), "exemplar", np.array([True, True, False]))
    np.testing.assert_allclose(w, [0.18, 0.5, 0.0])


def test_scoring_takes_the_exemplar_rows_and_ranks_by_w_times_entropy():
    scores = np.array([[0.9, 0.05], [0.6, 0.5], [0.7, 0.1]], np.float32)  # 2 images: 1 box, 2 boxes
    offsets = np.array([0, 1, 3])
    v = np.array([[0.8, 0.2], [0.3, 0.7]], np.float32)
    s = scoring.score_images(scores, offsets, np.array([9, 0]), tau=0.95, rule="exemplar", exemplar=v)
    w = scoring.rarity_weight(np.array([9, 0]))  # no image is in P: n = L's counts (9, 0)
    expected_w = [max(0.8 * w[0], 0.2 * w[1]), max(0.3 * w[0], 0.7 * w[1])]
    np.testing.assert_allclose(s.image_weight, expected_w)
    np.testing.assert_allclose(s.value, np.asarray(expected_w) * s.entropy)
    with pytest.raises(ValueError, match="exemplar posteriors per image"):
        scoring.score_images(scores, offsets, np.array([9, 0]), rule="exemplar")


def test_taast_exemplar_is_a_registered_diverse_strategy_needing_prototypes():
    record = registry.strategy("taast-exemplar")
    assert record.needs_exemplars and record.rarity == "exemplar" and record.embeds == "candidates"
    assert not registry.strategy("taast").needs_exemplars
