"""The experiment statistics of SPEC.md §6: mean ± 1.96σ/√n over seeds and label efficiency.

Beside the paper's 1.96σ/√n, each interval carries Student's t half-width t_{0.975, n−1} · σ/√n:
with 3 seeds t = 4.303, so the paper's interval is 2.2 times too narrow for a 95 % claim.

Pure functions on plain numbers; the report and the tests call them directly.

Label efficiency of a strategy against the reference (random) on one seed:

    1 − (manual labels the strategy needs to reach the reference's final metric)
        / (manual labels the reference used),

where "needs" is read off the strategy's cycle curve (labels, metric) by linear interpolation
between the cycles that bracket the target. Two cases have no number, and say why:
the reference never rose above its own start (every strategy would "reach" it with L0 alone),
and the strategy never reached the target within its cycles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

Z95 = 1.96
# t_{0.975, df} for df = 1..30 (the standard table); beyond, the Cornish–Fisher series in 1/df
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """Student's t 97.5 % quantile with ``df`` degrees of freedom (NaN for df < 1)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


@dataclass(frozen=True)
class MeanCI:
    mean: float
    half_width: float   # 1.96 · σ / √n with the sample σ (n − 1); NaN for n < 2
    n: int
    t_half_width: float = math.nan  # t_{0.975, n−1} · σ / √n; NaN for n < 2

    def format(self, digits: int = 3, with_t: bool = False) -> str:
        """"m ± h", and with ``with_t`` the t-interval beside it: "m ± h (t ± h_t)"."""
        if self.n == 0:
            return "n/a"
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        cell = f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"
        if with_t and not math.isnan(self.t_half_width):
            cell += f" (t ± {self.t_half_width:.{digits}f})"
        return cell


def mean_ci(values: Sequence[float | None]) -> MeanCI:
    """Mean and 95 % half-width over the finite values (a missing seed is left out, not zero)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return MeanCI(math.nan, math.nan, 0)
    mean = sum(xs) / n
    if n < 2:
        return MeanCI(mean, math.nan, 1)
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    se = math.sqrt(var) / math.sqrt(n)
    return MeanCI(mean, Z95 * se, n, t_quantile_975(n - 1) * se)


def labels_to_reach(labels: Sequence[float], metric: Sequence[float], target: float) -> float | None:
    """The fewest labels at which the piecewise-linear curve first reaches ``target``; None if never."""
    if len(labels) != len(metric) or not labels:
        raise ValueError("labels and metric must be equally long and not empty")
    if metric[0] >= target:
        return float(labels[0])
    for (x0, y0), (x1, y1) in zip(zip(labels, metric), zip(labels[1:], metric[1:])):
        if y0 < target <= y1:
            return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))
    return None


@dataclass(frozen=True)
class Efficiency:
    value: float | None
    needed: float | None      # labels the strategy needed (None: never reached)
    reference_used: float
    target: float
    note: str = ""            # why there is no value


def label_efficiency(labels: Sequence[float], metric: Sequence[float],
                     ref_labels: Sequence[float], ref_metric: Sequence[float]) -> Efficiency:
    """SPEC.md §6 label efficiency of one strategy's curve against the reference's, same seed."""
    target, used = float(ref_metric[-1]), float(ref_labels[-1])
    if target <= ref_metric[0]:
        return Efficiency(None, None, used, target, "reference did not improve on its start")
    needed = labels_to_reach(labels, metric, target)
    if needed is None:
        return Efficiency(None, None, used, target, "never reached the reference's final value")
    return Efficiency(1.0 - needed / used, needed, used, target)


def paired_difference(a: dict[int, float], b: dict[int, float]) -> MeanCI:
    """Mean ± CI of a − b over the seeds both have: the seeds share L0 and U, so pair them."""
    return mean_ci([a[s] - b[s] for s in sorted(set(a) & set(b))])
