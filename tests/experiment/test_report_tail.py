"""The report's L0 groups and tail lift from hand-made trial rows (no training)."""
import math

import pytest

from taast_ray.experiment.config import experiment_from_dict
from taast_ray.experiment.report import _summary, cycle_table, table2

EXP = {"name": "t", "base": {"protocol": {"cycles": 2}}, "seeds": [1, 2],
       "strategies": ["random", "taast"], "metric": "APr@L0"}
CLASSES = {"ids": [1, 2], "names": ["a", "b"], "frequency": ["f", "r"], "pool_objects": [10, 2]}


def _rows(apr_l0, lifts):
    base = {"AP": 0.2, "APr": 0.0, "APc": 0.1, "APf": 0.5, "mAP": 0.2, "APc@L0": 0.3,
            "APf@L0": None, "labelled_images": 0, "manual_annotations": 10, "pseudo_share": 0.0}
    return [{**base, "cycle": t, "labelled_images": 100 + 50 * t, "APr@L0": a, "tail_lift": lift}
            for t, (a, lift) in enumerate(zip(apr_l0, lifts))]


def _record(strategy, seed, apr_l0, lifts):
    return {"strategy": strategy, "seed": seed, "selection": strategy, "pseudo_labels": False,
            "rows": _rows(apr_l0, lifts), "test": None, "selected_objects": {"1": 3, "2": 1}}


def test_l0_metric_and_tail_lift_in_the_summary_and_tables():
    exp = experiment_from_dict(EXP)
    records = [_record("random", 1, [0.0, 0.01, 0.02], [None, 1.0, 0.8]),
               _record("random", 2, [0.0, 0.00, 0.04], [None, 1.2, 1.0]),
               _record("taast", 1, [0.0, 0.02, 0.05], [None, 2.0, 3.0]),
               _record("taast", 2, [0.0, 0.03, 0.06], [None, 1.0, 2.0])]
    summary = _summary(exp, records, CLASSES)
    # per seed: the mean over cycles 1..T; then mean over seeds
    assert summary["random"]["tail_lift"]["mean"] == pytest.approx(((1.0 + 0.8) / 2 + (1.2 + 1.0) / 2) / 2)
    assert summary["taast"]["tail_lift"]["mean"] == pytest.approx((2.5 + 1.5) / 2)
    assert summary["taast"]["final"]["APr@L0"]["mean"] == pytest.approx(0.055)
    assert summary["taast"]["vs_reference"]["APr@L0"]["mean"] == pytest.approx(0.055 - 0.03)
    # an undefined group stays undefined: no mean, no difference, never a 0
    assert summary["taast"]["final"]["APf@L0"]["n"] == 0 and math.isnan(summary["taast"]["final"]["APf@L0"]["mean"])
    assert summary["taast"]["delta"]["APf@L0"]["n"] == 0
    lines = table2(exp, summary)
    assert "tail lift" in lines[0] and "APr@L0 start" in lines[0]
    assert "| 2.00 ± " in lines[-1]
    cycles = cycle_table(summary)
    assert "APr@L0" in cycles[0] and "tail lift" in cycles[0]
    assert cycles[2].split(" | ")[-1].startswith("n/a")  # cycle 0 selects nothing: no lift


def test_paired_table_ordering_and_the_variants_against_the_papers_formula():
    from taast_ray.experiment.report import comparison_pairs, paired_table, verdict_lines

    exp = experiment_from_dict({**EXP, "seeds": [1, 2, 3],
                                "strategies": ["random", "entropy", "taast", "taast-expected"]})
    finals = {"random": [0.01, 0.02, 0.03], "entropy": [0.03, 0.02, 0.04], "taast": [0.04, 0.05, 0.06],
              "taast-expected": [0.06, 0.06, 0.09]}
    records = [_record(name, seed, [0.0, 0.0, a], [None, 1.0 + a, 1.0])
               for name, values in finals.items() for seed, a in zip((1, 2, 3), values)]
    for r in records:
        r["pseudo_labels"] = r["strategy"].startswith("taast")
    summary = _summary(exp, records, CLASSES)
    assert comparison_pairs(exp, summary) == [
        ("taast", "random"), ("taast", "entropy"), ("taast-expected", "random"),
        ("taast-expected", "entropy"), ("taast-expected", "taast")]
    table = paired_table(exp, summary)
    assert table[0].startswith("| pair | APr@L0 | AP_rare | mAP | tail lift | label efficiency |")
    # taast-expected − taast on APr@L0: 0.02, 0.01, 0.03 → +0.020, σ = 0.01, σ/√3 = 0.005774:
    # ± 1.96 · 0.005774 = 0.011, t ± 4.303 · 0.005774 = 0.025
    row = next(r for r in table if r.startswith("| taast-expected − taast |"))
    assert "| +0.020 ± 0.011 (t ± 0.025) |" in row
    # tail lift per seed is the mean over cycles 1..T: (1 + a + 1) / 2, so the difference is half of APr@L0's
    assert "| +0.010 ± 0.006 (t ± 0.012) |" in row
    lines = verdict_lines(exp, summary)
    assert lines[0].startswith("- TAAST > entropy > random on final APr@L0 (means taast 0.050, "
                               "entropy 0.030, random 0.020): holds in the means")
    sentence = next(x for x in lines if x.startswith("- taast-expected − taast, final APr@L0"))
    # +0.020 clears the paper's ± 0.011 but not the t-interval's ± 0.025 (3 seeds)
    assert "is better (the 1.96σ/√n interval excludes 0; the t-interval (± 0.025) includes 0)" in sentence
    steady = next(x for x in lines if x.startswith("- taast − random, final APr@L0"))
    assert "excludes 0 too" in steady  # 0.03 on every seed: σ = 0
    assert "| 0.050 ± 0.011 (t ± 0.025) |" in table2(exp, summary)[4]  # taast's final, t beside it


def test_the_pseudo_label_table_shows_precision_and_recall_by_l0_group():
    from taast_ray.experiment.report import _pseudo_quality, pseudo_table

    seed = lambda p, r: {g: {"precision": p, "recall": r} for g in ("r", "c", "f")}  # noqa: E731
    quality = _pseudo_quality([seed(0.5, 0.1), seed(0.7, 0.3), None])
    assert quality["r"]["precision"]["mean"] == 0.6 and quality["r"]["recall"]["n"] == 2
    assert _pseudo_quality([None, None]) is None
    lines = pseudo_table({"taast": {"pseudo_labels": True, "pseudo_quality": quality},
                          "random": {"pseudo_labels": False}})
    assert lines[2].startswith("| strategy | precision r@L0 | recall r@L0 |")
    assert lines[4].startswith("| taast | 0.60 ± ") and len(lines) == 6  # one arm trains with P
    assert pseudo_table({"random": {"pseudo_labels": False}}) == []
