"""One report from an experiment run in parts: ``taast report PART [PART ...] --out DIR``.

A study too long for one sitting runs as several experiments, each a subset of the arms
(``--set 'strategies=[...]'``) or of the seeds (``--set 'seeds=[84]'``) into a directory of its
own, on the same data and protocol.
Because a seed's L0/U split and warm-up are made from the seed alone, every part's trials of a
seed start from the same split and (on the same software) the same warm-up model; the merge
checks both rather than assuming them. A part is a finished experiment directory, or the
``experiment.yaml`` + ``results.json`` committed from one; the merged directory is a part too,
so a study can grow one part per session.

The trial records in ``results.json`` hold every number a summary is made of, so the merged
summary is computed afresh from them (``report.results_from_records``): paired differences,
label efficiency against the reference and the intervals cover every arm of every part.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from taast_ray.config import read_yaml_mapping
from taast_ray.errors import ConfigError, InputError
from taast_ray.selection import registry
from taast_ray.experiment.layout import ExperimentLayout
from taast_ray.experiment.config import ExperimentConfig, StrategySpec, _check, experiment_from_dict
from taast_ray.io import read_json, write_json, write_text
from taast_ray.versions import MACHINE_KEYS

# what may differ between parts: which arms ran, how they were scheduled, and the fields every
# trial sets for itself (trial_config: selection.strategy and .seed, protocol.pseudo_labels and .seeds)
FREE = ("name", "description", "strategies", "seeds", "reference", "parallel_trials", "base.ray",
        "base.selection.strategy", "base.selection.seed", "base.protocol.pseudo_labels", "base.protocol.seeds")
WARMUP_KEYS = ("APr@L0", "mAP")  # compared across parts, per seed, at cycle 0


@dataclass
class Part:
    path: Path
    exp: ExperimentConfig
    results: dict
    versions: dict


def read_part(path: str | Path) -> Part:
    path = Path(path)
    layout = ExperimentLayout(path)
    for file in (layout.config, layout.results):
        if not file.is_file():
            raise InputError(f"{path}: no {file.name} (a part is a finished experiment directory, or the "
                             f"{layout.config.name} and {layout.results.name} committed from one)")
    values = read_yaml_mapping(layout.config, keep_versions=True)
    try:
        exp = experiment_from_dict(values, runnable=False)  # sets the versions aside; retired arms read
    except ConfigError as exc:
        raise InputError(f"{layout.config}: {exc}") from None
    results = read_json(layout.results)
    if not isinstance(results, dict) or not isinstance(results.get("trials"), list) or "classes" not in results:
        raise InputError(f"{layout.results}: not an experiment's results (no trials or classes)")
    return Part(path, exp, results, values.get("versions") or {})


def _flat(values, prefix: str = "") -> dict:
    if not isinstance(values, dict):
        return {prefix: values}
    out = {}
    for k, v in values.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return {k.rstrip("."): v for k, v in out.items()}


def _settings(exp: ExperimentConfig) -> dict:
    return {k: v for k, v in _flat(exp.to_dict()).items()
            if not any(k == f or k.startswith(f + ".") for f in FREE)}


def _check_same_study(first: Part, part: Part) -> None:
    want, got = _settings(first.exp), _settings(part.exp)
    for key in sorted(set(want) | set(got)):
        if want.get(key) != got.get(key):
            raise InputError(f"{part.path}: {key} is {got.get(key)!r} but {want.get(key)!r} in {first.path}; "
                             "the parts of one report must share the data, seeds and protocol")
    mine, theirs = part.results["classes"], first.results["classes"]
    keys = ("ids", "names", "frequency") if set(part.exp.seeds) != set(first.exp.seeds) else None
    if set(mine) != set(theirs) or any(
            (mine[v] != theirs[v]) if keys is None else any(mine[v].get(k) != theirs[v].get(k) for k in keys)
            for v in theirs):
        raise InputError(f"{part.path}: its classes or pool differ from {first.path}'s (not the same data)")


def _seeds(parts: list[Part]) -> list[int]:
    """Every part's seeds, in the order the parts list them."""
    return list(dict.fromkeys(s for p in parts for s in p.exp.seeds))


def _classes(parts: list[Part]) -> dict:
    """The class table of the merged parts: the pool's objects per class are a mean over the seeds'
    pools, so parts over disjoint seeds weigh theirs by their number of seeds; parts over the same
    seeds have the same table. Parts whose seed sets overlap without being equal are refused."""
    by_seeds: dict[frozenset, Part] = {}
    for p in parts:
        by_seeds.setdefault(frozenset(p.exp.seeds), p)
    groups = list(by_seeds)
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            if a & b:
                raise InputError(f"{by_seeds[b].path}: its seeds {sorted(b)} overlap {by_seeds[a].path}'s "
                                 f"{sorted(a)} without being the same; give each part the same seeds or others")
    first = parts[0].results["classes"]  # per data variant: ids, names, frequency, pool_objects
    if len(groups) == 1:
        return first
    total = sum(len(g) for g in groups)
    return {variant: {**table, "pool_objects": [
        sum(by_seeds[g].results["classes"][variant]["pool_objects"][i] * len(g) for g in groups) / total
        for i in range(len(table["ids"]))]} for variant, table in first.items()}


def _strategies(parts: list[Part]) -> list[StrategySpec]:
    specs: dict[str, tuple[StrategySpec, Path]] = {}
    for p in parts:
        for s in p.exp.strategies:
            if s.name in specs and specs[s.name][0] != s:
                raise InputError(f"{p.path}: strategy {s.name!r} is {s.strategy} with pseudo labels "
                                 f"{str(s.pseudo_labels).lower()} there, but not in {specs[s.name][1]}")
            specs.setdefault(s.name, (s, p.path))
    baselines = registry.baselines()
    names = sorted(specs, key=lambda n: (baselines.index(n) if n in baselines else len(baselines)))
    return [specs[n][0] for n in names]  # the baselines first, then the arms as the parts list them


def _records(parts: list[Part], order: list[str]) -> list[dict]:
    seen: dict[tuple, Path] = {}
    records = []
    for p in parts:
        for r in p.results["trials"]:
            key = (r["variant"], r["strategy"], r["seed"])
            if key in seen:
                raise InputError(f"{p.path}: trial {r['variant']}/{r['strategy']}/seed_{r['seed']} is in "
                                 f"{seen[key]} too; give each trial in one part only")
            seen[key] = p.path
            records.append(r)
    return sorted(records, key=lambda r: order.index(r["strategy"]))


def warmup_agreement(parts: list[Part]) -> list[dict]:
    """Per (variant, seed) in more than one part: each part's cycle-0 values, and whether they agree."""
    found: dict[tuple, dict[str, dict]] = {}
    for p in parts:
        for r in p.results["trials"]:
            start = {k: r["rows"][0].get(k) for k in WARMUP_KEYS}
            found.setdefault((r["variant"], r["seed"]), {}).setdefault(str(p.path), start)
    out = []
    for (variant, seed), by_part in sorted(found.items()):
        if len(by_part) < 2:
            continue
        values = list(by_part.values())
        same = all(all(_close(v[k], values[0][k]) for k in WARMUP_KEYS) for v in values)
        out.append({"variant": variant, "seed": seed, "same": same, "by_part": by_part})
    return out


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


def merge_parts(paths: list[str | Path], reference: str | None = None) -> tuple[ExperimentConfig, dict]:
    """The merged configuration and results (results.json's content plus ``parts`` and ``warmups``)."""
    from taast_ray.experiment.report import results_from_records

    if not paths:
        raise InputError("report: give at least one part")
    parts = [read_part(p) for p in paths]
    for p in parts[1:]:
        _check_same_study(parts[0], p)
    strategies = _strategies(parts)
    exp = replace(parts[0].exp, strategies=strategies, seeds=_seeds(parts),
                  reference=reference or parts[0].exp.reference)
    try:
        _check(exp)
    except ConfigError as exc:
        raise ConfigError(f"--{exc}") from None
    records = _records(parts, [s.name for s in strategies])
    results = results_from_records(exp, records, _classes(parts))
    results["parts"] = [{"path": str(p.path), "strategies": [s.name for s in p.exp.strategies],
                         "versions": p.versions} for p in parts]
    results["warmups"] = warmup_agreement(parts)
    return exp, results


def part_lines(results: dict) -> list[str]:
    """The report's account of its parts and of whether their warm-ups were the same model."""
    lines = ["## Parts", "", "Merged from trials run as separate experiments (`taast report`):", ""]
    for p in results["parts"]:
        v = p["versions"]
        software = ", ".join(f"{k} {v[k]}" for k in ("taast-ray", "ray", "torch", "ultralytics") if k in v)
        lines.append(f"- `{p['path']}`: {', '.join(p['strategies'])}" + (f" ({software})" if software else ""))
    checks = results["warmups"]
    if checks:
        differ = [c for c in checks if not c["same"]]
        lines += ["", (f"Warm-ups: every seed's cycle-0 {' and '.join(WARMUP_KEYS)} are the same in every part "
                       f"({len(checks)} seed(s) checked), so the parts' trials of a seed start from the same "
                       "model and the paired differences across parts are as paired as within one.")
                  if not differ else
                  "Warm-ups: **the parts did not start from the same model** for " + "; ".join(
                      f"{c['variant']}/seed {c['seed']} ({', '.join(f'{k}: ' + ' vs '.join(format(v[k], '.4f') for v in c['by_part'].values()) for k in WARMUP_KEYS)})"
                      for c in differ) + ". Differences across parts on those seeds compare different starts."
                  + machine_note(results["parts"])]
    return lines + [""]


def machine_note(parts: list[dict]) -> str:
    """Where the parts' records say they ran on different machines: which (the same code and
    wheels can train a different model on another CPU)."""
    seen = {k: sorted({str(p["versions"][k]) for p in parts if k in p["versions"]}) for k in MACHINE_KEYS}
    differ = {k: v for k, v in seen.items() if len(v) > 1}
    if not differ:
        return ""
    return (" The parts ran on different machines (" + "; ".join(f"{k}: {' vs '.join(v)}" for k, v in differ.items())
            + "): the same code and wheels can train a different model on another CPU.")


def write_merged_report(paths: list[str | Path], out: str | Path, reference: str | None = None) -> dict:
    """results.json, experiment.yaml (the merged arms, no versions: each part's are in results.json),
    report.md and plots/ under ``out``."""
    import yaml

    from taast_ray.experiment.report import write_report

    exp, results = merge_parts(paths, reference)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layout = ExperimentLayout(out)
    write_json(layout.results, results)
    write_text(layout.config, yaml.safe_dump(exp.to_dict(), sort_keys=False, allow_unicode=True))
    command = f"taast report {' '.join(map(str, paths))} --out {out}" + (
        f" --reference {reference}" if reference else "")
    write_report(exp, out, results, command, notes=part_lines(results))
    return results
