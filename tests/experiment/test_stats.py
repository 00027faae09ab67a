"""The experiment statistics against hand-computed values (SPEC.md §6)."""
import math

import pytest

from taast_ray.experiment.stats import label_efficiency, labels_to_reach, mean_ci, paired_difference


def test_mean_ci_three_seeds():
    # mean 2, sample σ = 1, 1.96 · 1 / √3 = 1.131606
    m = mean_ci([1.0, 2.0, 3.0])
    assert (m.mean, m.n) == (2.0, 3)
    assert m.half_width == pytest.approx(1.96 / math.sqrt(3))
    assert m.format() == "2.000 ± 1.132"


def test_mean_ci_two_seeds():
    # mean 0.3, σ = √((0.01 + 0.01) / 1) = 0.141421, 1.96 · 0.141421 / √2 = 0.196
    m = mean_ci([0.2, 0.4])
    assert m.mean == pytest.approx(0.3)
    assert m.half_width == pytest.approx(0.196)


def test_mean_ci_drops_missing_seeds_and_has_no_interval_for_one():
    m = mean_ci([0.5, None, float("nan")])
    assert (m.mean, m.n) == (0.5, 1)
    assert math.isnan(m.half_width)
    assert m.format() == "0.500"
    assert mean_ci([]).n == 0 and mean_ci([]).format() == "n/a"


def test_identical_values_have_zero_width():
    assert mean_ci([0.25, 0.25, 0.25]).half_width == 0.0


def test_labels_to_reach_interpolates_inside_the_bracketing_segment():
    # target 0.3 lies between (164, 0.2) and (228, 0.4): 164 + 64 · (0.1 / 0.2) = 196
    assert labels_to_reach([100, 164, 228], [0.1, 0.2, 0.4], 0.3) == pytest.approx(196.0)
    # reached exactly at a cycle
    assert labels_to_reach([100, 164, 228], [0.1, 0.2, 0.4], 0.2) == pytest.approx(164.0)
    # already at the start
    assert labels_to_reach([100, 164], [0.5, 0.6], 0.3) == 100.0
    # first crossing wins on a curve that dips again
    assert labels_to_reach([100, 164, 228], [0.1, 0.5, 0.2], 0.3) == pytest.approx(132.0)
    assert labels_to_reach([100, 164], [0.1, 0.2], 0.3) is None


def test_label_efficiency_hand_computed():
    # random ends at 0.3 with 228 labels; the strategy reaches 0.3 at 196 → 1 − 196/228
    e = label_efficiency([100, 164, 228], [0.1, 0.2, 0.4], [100, 164, 228], [0.1, 0.15, 0.3])
    assert e.value == pytest.approx(1 - 196 / 228)
    assert (e.needed, e.reference_used, e.target) == (pytest.approx(196.0), 228.0, 0.3)


def test_reference_against_itself_is_zero_on_a_rising_curve():
    xs, ys = [100, 164, 228], [0.1, 0.15, 0.3]
    assert label_efficiency(xs, ys, xs, ys).value == pytest.approx(0.0)


def test_efficiency_is_negative_when_more_labels_would_be_needed():
    # a strategy with more labels per cycle that reaches the target at its last point, 292
    e = label_efficiency([100, 196, 292], [0.1, 0.2, 0.3], [100, 164, 228], [0.1, 0.15, 0.3])
    assert e.value == pytest.approx(1 - 292 / 228)


def test_efficiency_undefined_cases_say_why():
    flat = label_efficiency([100, 164], [0.2, 0.4], [100, 164], [0.1, 0.1])
    assert flat.value is None and "did not improve" in flat.note
    short = label_efficiency([100, 164], [0.1, 0.2], [100, 164], [0.1, 0.3])
    assert short.value is None and "never reached" in short.note


def test_paired_difference_uses_common_seeds():
    # differences 0.1 and 0.3 on seeds 21, 42 (63 only in one): mean 0.2, σ 0.141421 → ± 0.196
    d = paired_difference({21: 0.5, 42: 0.6, 63: 0.9}, {21: 0.4, 42: 0.3})
    assert (d.mean, d.n) == (pytest.approx(0.2), 2)
    assert d.half_width == pytest.approx(0.196)


def test_t_interval_beside_the_papers():
    # [1, 2, 3]: σ/√n = 1/√3; t_{0.975, 2} = 4.303 → 2.484; the paper's 1.96 → 1.132
    from taast_ray.experiment.stats import t_quantile_975

    m = mean_ci([1.0, 2.0, 3.0])
    assert m.t_half_width == pytest.approx(4.303 / math.sqrt(3))
    assert m.format(with_t=True) == "2.000 ± 1.132 (t ± 2.484)"
    assert m.format() == "2.000 ± 1.132"
    assert math.isnan(mean_ci([0.5]).t_half_width) and mean_ci([0.5]).format(with_t=True) == "0.500"
    assert t_quantile_975(1) == 12.706 and t_quantile_975(30) == 2.042
    assert t_quantile_975(60) == pytest.approx(2.000, abs=1e-3)  # the series beyond the table
    assert t_quantile_975(10_000) == pytest.approx(1.96, abs=1e-3) and math.isnan(t_quantile_975(0))
    d = paired_difference({21: 0.5, 42: 0.6}, {21: 0.4, 42: 0.3})
    assert d.t_half_width == pytest.approx(12.706 * 0.141421356 / math.sqrt(2))
