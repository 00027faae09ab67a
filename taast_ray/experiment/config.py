"""``taast experiment`` configuration: a run configuration plus strategies × seeds × data variants.

    name: taast-comparison
    base: {data: ..., selection: {budget: 64}, train: ..., protocol: {cycles: 2}}  # as taast run
    seeds: [21, 42, 63]
    strategies:                   # a name, or {name, strategy, pseudo_labels}
      - random                    # baselines default to no pseudo labels (the paper's baselines)
      - taast                     # taast and its ablations default to pseudo labels on
      - {name: taast-no-pseudo, strategy: taast, pseudo_labels: false}
    reference: random             # label efficiency is measured against this strategy
    metric: APr                   # the metric label efficiency reads (AP, APr, APc, APf, mAP)
    curve_split: val              # per-cycle evaluation split; "test" where the label shift lives
    parallel_trials: 1            # trials at once on the cluster ("auto": one per 4 CPUs / 1 GPU)
    sweep:                        # synthetic data only: the cartesian product is the variant list
      empty_fraction: [0.0, 0.5, 0.9]
      label_shift: {none: null, moderate: "dirichlet:5", strong: "dirichlet:0.5"}

Validated before any work: a bad field fails with a one-line message that names it.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from taast_ray.config import STRATEGIES, TaastConfig, config_from_dict, read_yaml_mapping
from taast_ray.errors import ConfigError

BASELINES = ("random", "entropy", "coreset")
METRICS = ("AP", "APr", "APc", "APf", "mAP", "APr@L0", "APc@L0", "APf@L0")
EXPERIMENT_FIELDS = ("name", "description", "base", "seeds", "strategies", "reference", "metric",
                     "curve_split", "parallel_trials", "data_seed", "sweep", "zipf", "versions")


@dataclass(frozen=True)
class StrategySpec:
    name: str
    strategy: str
    pseudo_labels: bool


@dataclass(frozen=True)
class Variant:
    """One dataset of the study; ``empty_fraction`` and ``shift_level`` place it in the sweep's plots."""
    name: str
    empty_fraction: float = 0.0
    label_shift: str | None = None
    shift_level: str = "none"


@dataclass
class ExperimentConfig:
    name: str
    base: TaastConfig
    strategies: list[StrategySpec]
    seeds: list[int]
    variants: list[Variant]
    reference: str = "random"
    metric: str = "APr"
    curve_split: str = "val"
    parallel_trials: int | str = 1
    data_seed: int = 0
    zipf: float = 1.2
    description: str = ""
    sweep: dict = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.base.data.train is None

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "base": self.base.to_dict(),
                "seeds": self.seeds,
                "strategies": [{"name": s.name, "strategy": s.strategy, "pseudo_labels": s.pseudo_labels}
                               for s in self.strategies],
                "reference": self.reference, "metric": self.metric, "curve_split": self.curve_split,
                "parallel_trials": self.parallel_trials, "data_seed": self.data_seed, "zipf": self.zipf,
                "sweep": self.sweep}


def _strategy(item, i: int) -> StrategySpec:
    where = f"strategies[{i}]"
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or "name" not in item:
        raise ConfigError(f"{where}: expected a strategy name or a mapping with 'name', got {item!r}")
    unknown = set(item) - {"name", "strategy", "pseudo_labels"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown field")
    strategy = str(item.get("strategy", item["name"]))
    if strategy not in STRATEGIES:
        raise ConfigError(f"{where}.strategy: must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    pseudo = item.get("pseudo_labels", strategy not in BASELINES)
    if not isinstance(pseudo, bool):
        raise ConfigError(f"{where}.pseudo_labels: expected true or false, got {pseudo!r}")
    return StrategySpec(str(item["name"]), strategy, pseudo)


def _variants(sweep: dict, synthetic: bool) -> list[Variant]:
    if not sweep:
        return [Variant("default")]
    if not synthetic:
        raise ConfigError("sweep: only synthetic data can be swept (base.data.train is set)")
    unknown = set(sweep) - {"empty_fraction", "label_shift"}
    if unknown:
        raise ConfigError(f"sweep.{sorted(unknown)[0]}: unknown field (empty_fraction, label_shift)")
    fractions = sweep.get("empty_fraction", [0.0])
    shifts = sweep.get("label_shift", {"none": None})
    if not isinstance(fractions, list) or not fractions:
        raise ConfigError(f"sweep.empty_fraction: expected a non-empty list, got {fractions!r}")
    for f in fractions:
        if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 <= f < 1:
            raise ConfigError(f"sweep.empty_fraction: every value must be in [0, 1), got {f!r}")
    if not isinstance(shifts, dict) or not shifts:
        raise ConfigError(f"sweep.label_shift: expected a mapping level name → spec, got {shifts!r}")
    from taast_ray.data.synth import parse_label_shift

    for level, spec in shifts.items():
        if spec is not None:
            try:
                parse_label_shift(spec)
            except ConfigError as exc:
                raise ConfigError(f"sweep.label_shift.{level}: {str(exc).split(': ', 1)[1]}") from None
    return [Variant(f"empty{round(100 * f):02d}-shift_{level}", float(f), spec, str(level))
            for f, (level, spec) in itertools.product(fractions, shifts.items())]


def experiment_from_dict(values: dict) -> ExperimentConfig:
    if not isinstance(values, dict):
        raise ConfigError("experiment: the file must hold a mapping at the top level")
    unknown = set(values) - set(EXPERIMENT_FIELDS)
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown field")
    base_values = values.get("base") or {}
    if not isinstance(base_values, dict):
        raise ConfigError(f"base: expected a mapping, got {base_values!r}")
    try:
        base = config_from_dict({k: v for k, v in base_values.items() if k != "versions"}).validate()
    except ConfigError as exc:
        raise ConfigError(f"base.{exc}") from None
    raw_strategies = values.get("strategies") or ["random", "entropy", "coreset", "taast"]
    if not isinstance(raw_strategies, list):
        raise ConfigError(f"strategies: expected a list, got {raw_strategies!r}")
    strategies = [_strategy(s, i) for i, s in enumerate(raw_strategies)]
    names = [s.name for s in strategies]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"strategies: the name {duplicate!r} appears twice")
    seeds = values.get("seeds", base.protocol.seeds)
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"seeds: expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: each seed once, got {seeds!r}")
    exp = ExperimentConfig(
        name=str(values.get("name", "experiment")), description=str(values.get("description", "")),
        base=base, strategies=strategies, seeds=list(seeds),
        variants=_variants(values.get("sweep") or {}, base.data.train is None),
        reference=str(values.get("reference", "random")), metric=str(values.get("metric", "APr")),
        curve_split=str(values.get("curve_split", "val")),
        parallel_trials=values.get("parallel_trials", 1), data_seed=values.get("data_seed", 0),
        zipf=values.get("zipf", 1.2), sweep=values.get("sweep") or {})
    _check(exp)
    return exp


def _check(exp: ExperimentConfig) -> None:
    checks = [
        ("reference", exp.reference in {s.name for s in exp.strategies},
         f"must name one of the listed strategies ({', '.join(s.name for s in exp.strategies)})"),
        ("metric", exp.metric in METRICS, f"must be one of {', '.join(METRICS)}"),
        ("curve_split", exp.curve_split in ("val", "test"), "must be val or test"),
        ("curve_split", exp.curve_split == "val" or exp.synthetic or exp.base.data.test,
         "is test but base.data.test is not set"),
        ("parallel_trials", exp.parallel_trials == "auto" or (
            isinstance(exp.parallel_trials, int) and not isinstance(exp.parallel_trials, bool)
            and exp.parallel_trials >= 1), "must be an integer >= 1 or auto"),
        ("data_seed", isinstance(exp.data_seed, int) and not isinstance(exp.data_seed, bool),
         "must be an integer"),
        ("zipf", isinstance(exp.zipf, (int, float)) and exp.zipf > 0, "must be a number > 0"),
        ("base.protocol.cycles", exp.base.protocol.cycles >= 1, "must be >= 1 in an experiment"),
        ("base.protocol.simulate", exp.base.protocol.simulate, "must be true: experiments need the oracle"),
    ]
    for name, ok, rule in checks:
        if not ok:
            value = getattr(exp, name, None) if "." not in name else None
            raise ConfigError(f"{name}: {rule}" + (f", got {value!r}" if value is not None else ""))


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """YAML → ExperimentConfig; ``overrides`` are ``base.section.field=value`` or ``field=value``."""
    values = read_yaml_mapping(path)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"{item}: override must look like field=value or base.section.field=value")
        parts, node = key.strip().split("."), values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {part} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw) if raw else raw
    return experiment_from_dict(values)


def trial_config(exp: ExperimentConfig, variant_data: dict, spec: StrategySpec, seed: int) -> TaastConfig:
    """The run configuration of one trial: the base with this strategy, seed and dataset."""
    b = exp.base
    data = replace(b.data, **variant_data)
    if exp.curve_split == "test":
        data = replace(data, val=data.test)
    return replace(b, data=data, selection=replace(b.selection, strategy=spec.strategy, seed=seed),
                   protocol=replace(b.protocol, pseudo_labels=spec.pseudo_labels, seeds=[seed]))
