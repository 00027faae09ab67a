"""An experiment's results: gathered from the trial directories, summarised over seeds, reported.

``results.json`` keeps every trial's per-cycle rows next to the summaries, so a reader can redo
any number; ``report.md`` has the Table-2-shaped table per dataset, paired differences against
the reference strategy, the per-cycle curves, and the plots under ``plots/``.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from taast_ray.selection import registry
from taast_ray.evaluation.metrics import METRIC_KEYS as METRICS, METRIC_NAMES
from taast_ray.evaluation.pseudo import GROUPS as PSEUDO_GROUPS
from taast_ray.experiment.config import ExperimentConfig
from taast_ray.experiment.layout import CurvesLayout, ExperimentLayout
from taast_ray.experiment.stats import MeanCI, label_efficiency, mean_ci, paired_difference
from taast_ray.io import read_json, write_json
from taast_ray.loop.layout import RunLayout
from taast_ray.loop.rows import ROW_METRIC_KEYS

# groups counted on L0 (the paper's rare: < 10 L0 images), beside the label file's own tags
REPORT_METRICS = tuple(dict.fromkeys((*METRICS, "APr@L0", "APc@L0", "APf@L0")))
DEFINITIONS = ("AP_rare/AP_common/AP_freq: LVIS groups by the label file's own tags (training-split "
               "image counts, r <= 10, c 11-100, f > 100); APr@L0/APc@L0/APf@L0: groups counted on "
               "L0 (r < 10 images: the paper's rare, c 10-100, f > 100); tail lift: images holding an "
               "L0-rare object among the selected, over random's expectation B x pool share "
               "(mean over cycles 1..T); n/a or —: undefined (no class in the group)")


def _minus(a, b):
    return None if a is None or b is None else a - b


def _defined(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _object_counts(labels: dict) -> Counter:
    return Counter(a["category_id"] for a in labels["annotations"])


def _trial_record(exp: ExperimentConfig, trial) -> dict:
    run = trial.run
    rows = read_json(run.cycles_json)
    selected: Counter = Counter()
    for c in range(1, exp.base.protocol.cycles + 1):
        selected += _object_counts(read_json(run.cycle(c).labels_new))
    test = read_json(run.test_metrics) if run.test_metrics.exists() else None
    if trial.curves is not None:
        # shared training: the run's rows (selection, labels, tail lift) with this variant's own
        # test-split metrics in place of the unshifted val's; the last cycle's is its test result
        curves = [read_json(CurvesLayout(trial.curves).score(r["cycle"])) for r in rows]
        rows = [{**r, **{k: m.get(k) for k in ROW_METRIC_KEYS}} for r, m in zip(rows, curves)]
        test = curves[-1]
    return {"variant": trial.variant.name, "strategy": trial.strategy.name, "seed": trial.seed,
            "selection": trial.strategy.strategy, "pseudo_labels": trial.strategy.pseudo_labels,
            "rows": rows, "test": {k: test.get(k) for k in REPORT_METRICS} if test is not None else None,
            "selected_objects": {str(k): v for k, v in sorted(selected.items())}}


def _class_table(variant_trials: list, train_json: str) -> dict:
    """Class names, LVIS frequency tags and the pool's objects per class (mean over the seeds' U)."""
    train = read_json(train_json)
    cats = sorted(train["categories"], key=lambda c: c["id"])
    total = _object_counts(train)
    bases = sorted({t.base for t in variant_trials})
    pool: Counter = Counter()
    for b in bases:
        l0 = _object_counts(read_json(RunLayout(b).labels_l0))
        pool.update({k: total[k] - l0.get(k, 0) for k in total})
    return {"ids": [c["id"] for c in cats], "names": [str(c.get("name", c["id"])) for c in cats],
            "frequency": [c.get("frequency") for c in cats],
            "pool_objects": [pool[c["id"]] / max(len(bases), 1) for c in cats]}


def _summary(exp: ExperimentConfig, records: list[dict], classes: dict) -> dict:
    by_strategy: dict[str, dict[int, dict]] = {}
    for r in records:
        by_strategy.setdefault(r["strategy"], {})[r["seed"]] = r
    rare_ids = {str(i) for i, f in zip(classes["ids"], classes["frequency"]) if f == "r"}
    has_tags = any(f is not None for f in classes["frequency"])
    ref = by_strategy.get(exp.reference, {})
    out = {}
    for name, seeds in by_strategy.items():
        curve = []
        for t in range(exp.base.protocol.cycles + 1):
            at = [s["rows"][t] for s in seeds.values()]
            curve.append({"cycle": t, "labelled_images": mean_ci([r["labelled_images"] for r in at]).mean,
                          **{k: vars(mean_ci([r.get(k) for r in at])) for k in REPORT_METRICS},
                          "tail_lift": vars(mean_ci([r.get("tail_lift") for r in at]))})
        final = {k: {s: r["rows"][-1].get(k) for s, r in seeds.items()} for k in REPORT_METRICS}
        start = {k: {s: r["rows"][0].get(k) for s, r in seeds.items()} for k in REPORT_METRICS}
        lift_by_seed = {s: mean_ci([x.get("tail_lift") for x in r["rows"][1:]]).mean for s, r in seeds.items()}
        lifts = list(lift_by_seed.values())
        efficiency = {}
        for s, r in seeds.items():
            if s in ref:
                e = label_efficiency([x["labelled_images"] for x in r["rows"]], [x[exp.metric] for x in r["rows"]],
                                     [x["labelled_images"] for x in ref[s]["rows"]],
                                     [x[exp.metric] for x in ref[s]["rows"]])
                efficiency[s] = vars(e)
        rare = [sum(v for k, v in r["selected_objects"].items() if k in rare_ids) for r in seeds.values()]
        picked = [sum(r["selected_objects"].values()) for r in seeds.values()]
        quality = _pseudo_quality([r["rows"][-1].get("pseudo_quality") for r in seeds.values()])
        out[name] = {**({"pseudo_quality": quality} if quality else {}),  # studies before it: as they were
            "selection": next(iter(seeds.values()))["selection"],
            "pseudo_labels": next(iter(seeds.values()))["pseudo_labels"],
            "seeds": sorted(seeds), "curve": curve,
            "start": {k: vars(mean_ci(list(v.values()))) for k, v in start.items()},
            "final": {k: vars(mean_ci(list(v.values()))) for k, v in final.items()},
            "final_by_seed": final,
            "delta": {k: vars(mean_ci([_minus(final[k][s], start[k][s]) for s in seeds])) for k in REPORT_METRICS},
            "vs_reference": {k: vars(paired_difference(_defined(final[k]), _defined(
                {s: r["rows"][-1].get(k) for s, r in ref.items()}))) for k in REPORT_METRICS},
            "tail_lift": vars(mean_ci(lifts)),
            "tail_lift_by_seed": {s: (None if math.isnan(v) else v) for s, v in lift_by_seed.items()},
            "efficiency": {"per_seed": efficiency,
                           **vars(mean_ci([e["value"] for e in efficiency.values()]))},
            "pseudo_share": vars(mean_ci([r["rows"][-1]["pseudo_share"] for r in seeds.values()])),

            "manual_annotations": vars(mean_ci([r["rows"][-1]["manual_annotations"] for r in seeds.values()])),
            "rare_objects_selected": vars(mean_ci(rare)) if has_tags else None,
            "rare_share_selected": vars(mean_ci([a / b for a, b in zip(rare, picked) if b])) if has_tags else None,
            "test": {k: vars(mean_ci([r["test"].get(k) for r in seeds.values() if r["test"]])) for k in REPORT_METRICS},
            "selected_objects": {k: sum(r["selected_objects"].get(str(k), 0) for r in seeds.values()) / len(seeds)
                                 for k in classes["ids"]},
        }
    return out


def collect_results(exp: ExperimentConfig, out: Path, trials, data: dict[str, dict]) -> dict:
    """``data``: each variant's data section (its train file gives the classes and the pool)."""
    records = [_trial_record(exp, t) for t in trials]
    classes = {v.name: _class_table([t for t in trials if t.variant == v], data[v.name]["train"])
               for v in exp.variants}
    results = results_from_records(exp, records, classes)
    write_json(ExperimentLayout(out).results, results)
    return results


def results_from_records(exp: ExperimentConfig, records: list[dict], classes: dict) -> dict:
    """results.json's content from the trial records and each variant's class table (pure: the
    records hold every number the summaries are made of)."""
    summary = {v.name: _summary(exp, [r for r in records if r["variant"] == v.name], classes[v.name])
               for v in exp.variants}
    return {"experiment": exp.name, "metric": exp.metric, "reference": exp.reference,
            "seeds": exp.seeds, "cycles": exp.base.protocol.cycles, "curve_split": exp.curve_split,
            "variants": [vars(v) for v in exp.variants], "classes": classes,
            "summary": summary, "trials": records}


def _ci(d: dict | None, digits: int = 3, with_t: bool = False) -> str:
    return MeanCI(**d).format(digits, with_t) if d else "n/a"


def _signed(d: dict, digits: int = 3, with_t: bool = False) -> str:
    m = MeanCI(**d)
    if m.n == 0:
        return "n/a"
    cell = f"{m.mean:+.{digits}f}" + ("" if math.isnan(m.half_width) else f" ± {m.half_width:.{digits}f}")
    if with_t and not math.isnan(m.t_half_width):
        cell += f" (t ± {m.t_half_width:.{digits}f})"
    return cell


def _efficiency_cell(e: dict) -> str:
    per_seed = e["per_seed"]
    defined = [v for v in per_seed.values() if v["value"] is not None]
    if not defined:
        notes = sorted({v["note"] for v in per_seed.values()})
        return "n/a" + (f" ({'; '.join(notes)})" if notes else "")
    cell = _signed({"mean": e["mean"], "half_width": e["half_width"], "n": e["n"]}, 2)
    return cell + (f" ({len(defined)}/{len(per_seed)} seeds)" if len(defined) < len(per_seed) else "")


def verdict(d: MeanCI, better: str) -> str:
    """The claim the paper's 1.96σ/√n interval allows, and whether the t-interval agrees."""
    if d.n < 2:
        return "one seed: no interval, no claim"
    t_excludes = abs(d.mean) > d.t_half_width if not math.isnan(d.t_half_width) else False
    t_note = (f"; the t-interval (± {d.t_half_width:.3f}) " + ("excludes 0 too" if t_excludes else "includes 0")
              if not math.isnan(d.t_half_width) else "")
    if d.mean - d.half_width > 0:
        return f"{better} is better (the 1.96σ/√n interval excludes 0{t_note})"
    if d.mean + d.half_width < 0:
        return f"{better} is worse (the 1.96σ/√n interval excludes 0{t_note})"
    return f"no difference shown (the interval includes 0{t_note})"


def paper_arm(summary: dict) -> str | None:
    """The arm that runs the paper's formula: selection taast with pseudo labels (named taast if any)."""
    paper = registry.DEFAULT
    arms = [n for n, s in summary.items() if s["selection"] == paper and s["pseudo_labels"]]
    return paper if paper in arms else (arms[0] if arms else None)


def comparison_pairs(exp: ExperimentConfig, summary: dict) -> list[tuple[str, str]]:
    """(a, b) for a − b: each TAAST-type arm against each baseline, then every other TAAST-type
    arm (ablations, variants) against the paper's formula; with no TAAST, each against the reference."""
    taasts = [n for n, s in summary.items() if not registry.is_baseline(s["selection"])]
    baselines = [n for n, s in summary.items() if registry.is_baseline(s["selection"])]
    if not taasts:
        return [(n, exp.reference) for n in summary if n != exp.reference]
    pairs = [(t, b) for t in taasts for b in baselines]
    paper = paper_arm(summary)
    return pairs + [(t, paper) for t in taasts if paper is not None and t != paper]


def _by_seed(summary: dict, name: str, quantity: str) -> dict:
    s = summary[name]
    if quantity == "tail_lift":
        values = s.get("tail_lift_by_seed", {})
    elif quantity == "efficiency":
        values = {k: v["value"] for k, v in s["efficiency"]["per_seed"].items()}
    else:
        values = s["final_by_seed"][quantity]
    return _defined({int(k): v for k, v in values.items()})


PAIRED_QUANTITIES = (("APr@L0", "APr@L0"), ("APr", "AP_rare"), ("mAP", "mAP"), ("tail_lift", "tail lift"),
                     ("efficiency", "label efficiency"))


def paired_table(exp: ExperimentConfig, summary: dict) -> list[str]:
    """Paired differences a − b over the seeds both ran (same L0, U and warm-up), final values:
    mean ± 1.96σ/√n with the t-interval beside it."""
    quantities = list(dict.fromkeys([(exp.metric, METRIC_NAMES[exp.metric]), *PAIRED_QUANTITIES]))
    rows = []
    for a, b in comparison_pairs(exp, summary):
        cells = []
        for q, _ in quantities:
            d = paired_difference(_by_seed(summary, a, q), _by_seed(summary, b, q))
            cells.append(_signed(vars(d), 3, with_t=True))
        rows.append([f"{a} − {b}"] + cells)
    return _markdown_table(["pair"] + [name for _, name in quantities], rows)


def ordering_line(exp: ExperimentConfig, summary: dict, metric: str) -> str | None:
    """Whether the paper's claimed order TAAST > entropy > random holds in the means of ``metric``."""
    paper = paper_arm(summary)
    names = [paper, *registry.paper_order()[1:]]
    if paper is None or not all(n in summary for n in names):
        return None
    means = [summary[n]["final"][metric]["mean"] for n in names]
    if any(math.isnan(m) for m in means):
        return f"- TAAST > entropy > random on final {METRIC_NAMES[metric]}: undefined (no class in the group)."
    holds = means[0] > means[1] > means[2]
    shown = ", ".join(f"{n} {m:.3f}" for n, m in zip(names, means))
    return (f"- TAAST > entropy > random on final {METRIC_NAMES[metric]} (means {shown}): "
            f"{'holds in the means' if holds else 'does not hold'}; {paper} − entropy "
            f"{means[0] - means[1]:+.3f}, entropy − random {means[1] - means[2]:+.3f} (intervals below).")


def verdict_lines(exp: ExperimentConfig, summary: dict) -> list[str]:
    """Plain sentences, paired over seeds: each TAAST-type strategy against each baseline, or,
    with no TAAST in the study, each strategy against the reference."""
    lines = []
    for metric in dict.fromkeys([exp.metric, "APr", "mAP"]):
        line = ordering_line(exp, summary, metric)
        if line:
            lines.append(line)
    for metric in dict.fromkeys([exp.metric, "mAP"]):
        for t, b in comparison_pairs(exp, summary):
            d = paired_difference(_defined(summary[t]["final_by_seed"][metric]),
                                  _defined(summary[b]["final_by_seed"][metric]))
            if d.n:
                lines.append(f"- {t} − {b}, final {METRIC_NAMES[metric]}: {_signed(vars(d))} "
                             f"over {d.n} seeds: {verdict(d, t)}.")
    return lines


def _markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def table2(exp: ExperimentConfig, summary: dict) -> list[str]:
    """The first paper's Table 2, per strategy: start, final ± CI, Δ, mAP, label efficiency."""
    m = METRIC_NAMES[exp.metric]
    also_map = exp.metric != "mAP"
    also_l0 = exp.metric != "APr@L0"
    also_lvis_rare = exp.metric != "APr"
    head = ["strategy", "pseudo labels", f"{m} start", f"{m} final (t-interval)", f"Δ{m}"] + [
        "APr@L0 final"] * also_l0 + ["AP_rare final"] * also_lvis_rare + ["mAP final"] * also_map + [
        f"label efficiency ({m})", "rare objects selected", "tail lift", "pseudo share of training boxes"]
    rows = [[n, "yes" if s["pseudo_labels"] else "no", _ci(s["start"][exp.metric]),
             _ci(s["final"][exp.metric], with_t=True), _signed(s["delta"][exp.metric])] + [
             _ci(s["final"].get("APr@L0"))] * also_l0 + [_ci(s["final"].get("APr"))] * also_lvis_rare + [
             _ci(s["final"]["mAP"])] * also_map + [
             _efficiency_cell(s["efficiency"]), _ci(s["rare_objects_selected"], 1), _ci(s.get("tail_lift"), 2),
             _ci(s["pseudo_share"], 2)]
            for n, s in summary.items()]
    return _markdown_table(head, rows)


def _pseudo_quality(per_seed: list[dict | None]) -> dict | None:
    """The last cycle's pseudo-label precision and recall by L0 group, mean ± CI over the seeds;
    None where no trial measured it (a study run before it was, or no pseudo labels)."""
    measured = [q for q in per_seed if q]
    if not measured:
        return None
    return {g: {m: vars(mean_ci([q[g][m] for q in measured])) for m in ("precision", "recall")}
            for g in PSEUDO_GROUPS}


def pseudo_table(summary: dict) -> list[str]:
    """Per arm trained with pseudo labels: their precision and recall against the oracle by L0
    group (r < 10 L0 images), last cycle; empty where no arm measured it."""
    arms = {n: s["pseudo_quality"] for n, s in summary.items() if s["pseudo_labels"] and s.get("pseudo_quality")}
    if not arms:
        return []
    head = ["strategy"] + [f"{m} {g}@L0" for g in PSEUDO_GROUPS for m in ("precision", "recall")]
    rows = [[n] + [_ci(q[g][m], 2) for g in PSEUDO_GROUPS for m in ("precision", "recall")] for n, q in arms.items()]
    return ["Pseudo labels against the oracle, last cycle (same class, IoU ≥ 0.5; recall over the pool's "
            "objects of the group):", ""] + _markdown_table(head, rows) + [""]


def cycle_table(summary: dict) -> list[str]:
    head = ["strategy", "cycle", "labelled images", "AP", "AP_rare", "AP_common", "AP_freq", "mAP",
            "APr@L0", "APc@L0", "APf@L0", "tail lift"]
    rows = [[n, str(c["cycle"]), f"{c['labelled_images']:.0f}"] + [_ci(c.get(k)) for k in REPORT_METRICS]
            + [_ci(c.get("tail_lift"), 2)] for n, s in summary.items() for c in s["curve"]]
    return _markdown_table(head, rows)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def _legend(ax, **kwargs) -> None:
    """A legend where the panel has labelled lines: a sweep of the reference alone has none, and
    matplotlib warned "No artists with labels found to put in legend"."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _plot_curves(exp: ExperimentConfig, summary: dict, path: Path, title: str) -> None:
    plt = _pyplot()

    metrics = list(dict.fromkeys([exp.metric, "APr@L0", "APr", "mAP"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for n, s in summary.items():
            x = [c["labelled_images"] for c in s["curve"]]
            y = [c[metric]["mean"] for c in s["curve"]]
            h = [0.0 if math.isnan(c[metric]["half_width"]) else c[metric]["half_width"] for c in s["curve"]]
            if all(math.isnan(v) for v in y):
                continue  # undefined at every cycle (no class in the group)
            ax.plot(x, y, marker="o", label=n)
            ax.fill_between(x, [a - b for a, b in zip(y, h)], [a + b for a, b in zip(y, h)], alpha=0.15)
        ax.set_xlabel("manually labelled images")
        ax.set_ylabel(f"{METRIC_NAMES[metric]} ({exp.curve_split})")
        ax.grid(alpha=0.3)
    _legend(axes[0][0], fontsize=8)
    fig.suptitle(f"{title}: mean over seeds, band = 95 % CI (1.96σ/√n)")
    _save(fig, path)


def _plot_classes(summary: dict, classes: dict, path: Path, title: str) -> None:
    """Share of each class among the selected objects, per strategy, against the pool's share."""
    plt = _pyplot()
    import numpy as np

    order = np.argsort(classes["pool_objects"])[::-1]
    labels = [f"{classes['names'][i]} ({classes['frequency'][i] or '-'})" for i in order]
    pool = np.asarray(classes["pool_objects"], float)[order]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(order)), 4.5))
    width = 0.8 / max(len(summary), 1)
    for j, (n, s) in enumerate(summary.items()):
        sel = np.asarray([s["selected_objects"][classes["ids"][i]] for i in order], float)
        ax.bar(np.arange(len(order)) + j * width - 0.4 + width / 2, sel / max(sel.sum(), 1), width, label=n)
    ax.plot(np.arange(len(order)), pool / max(pool.sum(), 1), "k_", markersize=18, mew=2, label="pool U")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(order)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("share of objects (log)")
    ax.legend(fontsize=7)
    ax.set_title(f"{title}: classes of the selected images' objects, all cycles, seed mean", fontsize=9)
    _save(fig, path)


def _plot_sweep(exp: ExperimentConfig, results: dict, path: Path, axis: str) -> None:
    """Label efficiency against one sweep axis, a panel per level of the other axis."""
    plt = _pyplot()

    variants = results["variants"]
    other = "shift_level" if axis == "empty_fraction" else "empty_fraction"
    panels = list(dict.fromkeys(v[other] for v in variants))
    xs = list(dict.fromkeys(v[axis] for v in variants))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False, sharey=True)
    for ax, level in zip(axes[0], panels):
        for n in [s.name for s in exp.strategies if s.name != exp.reference]:
            pts = []
            for i, x in enumerate(xs):
                v = next((v for v in variants if v[axis] == x and v[other] == level), None)
                e = results["summary"][v["name"]][n]["efficiency"] if v else None
                if e and e["n"]:
                    pts.append((i, e["mean"], 0.0 if math.isnan(e["half_width"]) else e["half_width"]))
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                            marker="o", capsize=3, label=n)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(xs)), [f"{x:.0%}" if axis == "empty_fraction" else str(x) for x in xs])
        ax.set_xlabel("object-free images (class imbalance)" if axis == "empty_fraction" else "label shift")
        ax.set_title(f"{'label shift' if other == 'shift_level' else 'object-free'} = "
                     f"{level if other == 'shift_level' else format(level, '.0%')}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"label efficiency vs {exp.reference} ({METRIC_NAMES[exp.metric]})")
    _legend(axes[0][0], fontsize=8)
    _save(fig, path)


def sweep_table(exp: ExperimentConfig, results: dict) -> list[str]:
    names = [s.name for s in exp.strategies]
    head = ["object-free", "label shift"] + [f"{n}: eff. / final {METRIC_NAMES[exp.metric]}" for n in names]
    rows = []
    for v in results["variants"]:
        s = results["summary"][v["name"]]
        rows.append([f"{v['empty_fraction']:.0%}", v["shift_level"]] + [
            f"{_efficiency_cell(s[n]['efficiency']) if n != exp.reference else '—'} / {_ci(s[n]['final'][exp.metric])}"
            for n in names])
    return _markdown_table(head, rows)


def write_report(exp: ExperimentConfig, out: Path, results: dict, command: str | None = None,
                 notes: list[str] | None = None) -> Path:
    """``notes``: lines after the header (a merged report's parts)."""
    from taast_ray.versions import software_versions

    layout = ExperimentLayout(out)
    layout.plots.mkdir(exist_ok=True)
    b = exp.base
    lines = [f"# Experiment: {exp.name}", ""]
    if exp.description:
        lines += [exp.description.strip(), ""]
    lines += [
        f"- Command: `{command or f'taast experiment --config {layout.config} --out {out}'}`",
        f"- Strategies: {', '.join(f'{s.name} ({s.strategy}, pseudo labels {str(s.pseudo_labels).lower()})' for s in exp.strategies)}",
        f"- Seeds: {', '.join(map(str, exp.seeds))} (each seed: its own L0/U split and warm-up, shared by every strategy)",
        f"- Protocol: L0 = {b.protocol.seed_fraction:.0%} of train, B = {b.selection.budget}, T = {b.protocol.cycles} cycles, "
        f"warm-up {b.train.warmup_epochs} epochs, {b.train.epochs} epochs per cycle, {b.train.optimizer} lr0 {b.train.lr0}, "
        f"imgsz {b.train.imgsz}, detector {b.model.weights}, embedder {b.model.embedder} ({b.model.embedder_weights})",
        f"- Curves are evaluated on the {exp.curve_split} split; ± is 1.96σ/√n over seeds (sample σ), "
        "the paper's; (t ± …) is Student's t-interval t_{0.975, n−1}·σ/√n (4.303·σ/√n for 3 seeds); "
        f"label efficiency is against {exp.reference}'s final {METRIC_NAMES[exp.metric]}, per seed, "
        "counting manually labelled images including L0 (SPEC.md §6)",
        f"- Definitions: {DEFINITIONS}",
        f"- Software: {', '.join(f'{k} {v}' for k, v in software_versions().items() if k != 'platform')}",
        ""] + (notes or [])
    for v in exp.variants:
        summary = results["summary"][v.name]
        title = v.name if len(exp.variants) > 1 else exp.name
        lines += [f"## {title}", ""]
        if len(exp.variants) > 1:
            lines += [f"Object-free images {v.empty_fraction:.0%}, label shift {v.shift_level}"
                      + (f" (`{v.label_shift}` on the test split's class prior)" if v.label_shift else "") + ".", ""]
        lines += table2(exp, summary) + ["", "Paired over seeds:", ""] + verdict_lines(exp, summary) + [""]
        if comparison_pairs(exp, summary):
            lines += ["Paired differences of the final values (a − b, seeds in common; ± 1.96σ/√n, "
                      "t-interval in brackets):", ""] + paired_table(exp, summary) + [""]
        lines += pseudo_table(summary)
        curves_png = layout.plot(f"curves_{v.name}.png")
        classes_png = layout.plot(f"selected_classes_{v.name}.png")
        _plot_curves(exp, summary, curves_png, title)
        _plot_classes(summary, results["classes"][v.name], classes_png, title)
        lines += [f"![curves]({_relative(curves_png, layout)})", "",
                  f"![selected classes]({_relative(classes_png, layout)})", "",
                  "<details><summary>Per cycle</summary>", ""] + cycle_table(summary) + ["", "</details>", ""]
    if len(exp.variants) > 1:
        lines += ["## Sweep", ""] + sweep_table(exp, results) + [""]
        for axis in ("empty_fraction", "shift_level"):
            if len({v[axis] for v in results["variants"]}) > 1:
                plot = layout.plot(f"efficiency_vs_{axis}.png")
                _plot_sweep(exp, results, plot, axis)
                lines += [f"![efficiency against {axis}]({_relative(plot, layout)})", ""]
    layout.report.write_text("\n".join(lines) + "\n")
    return layout.report


def _relative(path: Path, layout: ExperimentLayout) -> str:
    """A file's link in report.md, which lies at the experiment's root."""
    return path.relative_to(layout.report.parent).as_posix()
