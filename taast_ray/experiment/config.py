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

A label shift changes only the synthetic test split (train, val and so L0, U and every selection
are the same images), so with ``curve_split: test`` the variants of one empty share train once:
their trials share one training run per (strategy, seed), and each variant's curve is that run's
models evaluated on its own test split (``Variant.trains_as`` names the shared run).

Validated before any work: a bad field fails with a one-line message that names it.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

from taast_ray.config import (TaastConfig, apply_overrides, config_from_dict, fill, merge_settings,
                              read_yaml_mapping)
from taast_ray.errors import ConfigError
from taast_ray.selection import registry
from taast_ray.evaluation.metrics import L0_KEYS, METRIC_KEYS

METRICS = METRIC_KEYS + L0_KEYS  # what `metric:` may name (label efficiency reads it)


@dataclass(frozen=True)
class StrategySpec:
    """One arm of the study: a name, or a mapping ``{name, strategy, pseudo_labels}``."""
    name: str
    strategy: str
    pseudo_labels: bool

    @classmethod
    def from_config(cls, value, where: str) -> "StrategySpec":
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or "name" not in value:
            raise ConfigError(f"{where}: expected a strategy name or a mapping with 'name', got {value!r}")
        spec = fill(_StrategyFields(), value, f"{where}.")
        strategy = spec.strategy or spec.name
        if strategy not in registry.REGISTRY:  # a retired one: experiment_from_dict
            raise ConfigError(f"{where}.strategy: must be one of {', '.join(registry.names())}, got {strategy!r}")
        # the record says whether an arm trains with P (the paper's baselines without, taast with)
        pseudo = registry.REGISTRY[strategy].pseudo_labels if spec.pseudo_labels is None else spec.pseudo_labels
        return cls(spec.name, strategy, pseudo)


@dataclass
class _StrategyFields:
    name: str = ""
    strategy: str | None = None
    pseudo_labels: bool | None = None


@dataclass
class SweepConfig:
    """Synthetic data only: the cartesian product of these is the list of datasets."""
    empty_fraction: list[float] = field(default_factory=lambda: [0.0])
    label_shift: dict[str, str | None] = field(default_factory=lambda: {"none": None})


@dataclass(frozen=True)
class Variant:
    """One dataset of the study; ``empty_fraction`` and ``shift_level`` place it in the sweep's plots.

    ``trains_as``: the training run this variant's trials use, its own name unless the label-shift
    variants of one empty share share their training (curve_split: test)."""
    name: str
    empty_fraction: float = 0.0
    label_shift: str | None = None
    shift_level: str = "none"
    trains_as: str = ""

    def __post_init__(self):
        if not self.trains_as:
            object.__setattr__(self, "trains_as", self.name)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    description: str = ""
    base: TaastConfig = field(default_factory=TaastConfig)
    seeds: list[int] | None = None            # unset: base.protocol.seeds
    strategies: list[StrategySpec] | None = None  # unset: random, entropy, coreset, taast
    reference: str = field(default_factory=lambda: registry.baselines()[0])  # random
    metric: str = "APr"
    curve_split: str = "val"
    parallel_trials: int | str = 1
    data_seed: int = 0
    zipf: float = 1.2
    sweep: SweepConfig | None = None
    _variants: list[Variant] = field(default_factory=list, repr=False)

    @property
    def synthetic(self) -> bool:
        return self.base.data.train is None

    @property
    def variants(self) -> list[Variant]:
        return self._variants

    @property
    def shares_training(self) -> bool:
        """Label-shift variants train once per empty share and are scored on their own test split."""
        return any(v.trains_as != v.name for v in self._variants)

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("_")}


def _variants(sweep: SweepConfig | None, synthetic: bool, curve_split: str = "val") -> list[Variant]:
    if sweep is None:
        return [Variant("default")]
    if not synthetic:
        raise ConfigError("sweep: only synthetic data can be swept (base.data.train is set)")
    fractions, shifts = sweep.empty_fraction, sweep.label_shift
    if not fractions:
        raise ConfigError(f"sweep.empty_fraction: expected a non-empty list, got {fractions!r}")
    for f in fractions:
        if not 0 <= f < 1:
            raise ConfigError(f"sweep.empty_fraction: every value must be in [0, 1), got {f!r}")
    if not shifts:
        raise ConfigError(f"sweep.label_shift: expected a mapping level name → spec, got {shifts!r}")
    from taast_ray.data.synth import parse_label_shift

    for level, spec in shifts.items():
        if spec is not None:
            try:
                parse_label_shift(spec)
            except ConfigError as exc:
                raise ConfigError(f"sweep.label_shift.{level}: {str(exc).split(': ', 1)[1]}") from None
    # the shift lives in the test split only: scored there, the shift levels share one training
    share = curve_split == "test"
    return [Variant(f"empty{round(100 * f):02d}-shift_{level}", float(f), spec, str(level),
                    f"empty{round(100 * f):02d}" if share else "")
            for f, (level, spec) in itertools.product(fractions, shifts.items())]


def experiment_from_dict(values: dict, *, runnable: bool = True) -> ExperimentConfig:
    """The experiment file through the same typed loading as a run's configuration.

    ``runnable=False`` reads a finished study's record (``taast report``), whose arms may use a
    strategy retired since (selection/registry.py); an experiment to run may not."""
    if not isinstance(values, dict):
        raise ConfigError("experiment: the file must hold a mapping at the top level")
    values = {k: v for k, v in values.items() if k != "versions"}
    if values.get("sweep") == {}:
        # no sweep: what experiment.yaml held for one before it wrote null, read back as the same
        # single "default" dataset (a sweep of the defaults alone would be renamed empty00-shift_none)
        values["sweep"] = None
    base_values = values.pop("base", None) or {}
    if not isinstance(base_values, dict):
        raise ConfigError(f"base: expected a mapping, got {base_values!r}")
    exp = fill(ExperimentConfig(), values)
    try:
        exp.base = config_from_dict({k: v for k, v in base_values.items() if k != "versions"}).validate_for_run()
    except ConfigError as exc:
        raise ConfigError(f"base.{exc}") from None
    if exp.strategies is None:
        exp.strategies = [StrategySpec.from_config(n, "strategies") for n in registry.default_arms()]
    if exp.seeds is None:
        exp.seeds = list(exp.base.protocol.seeds)
    retired = next((i for i, s in enumerate(exp.strategies) if s.strategy in registry.retired()), None)
    if runnable and retired is not None:
        name = exp.strategies[retired].strategy
        raise ConfigError(f"strategies[{retired}].strategy: {name} was {registry.retired()[name]}")
    exp._variants = _variants(exp.sweep, exp.synthetic, exp.curve_split)
    _check(exp)
    return exp


def _check(exp: ExperimentConfig) -> None:
    names = [s.name for s in exp.strategies]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    checks = [
        ("strategies", duplicate is None, f"the name {duplicate!r} appears twice"),
        ("seeds", bool(exp.seeds) and len(set(exp.seeds)) == len(exp.seeds),
         "expected a non-empty list of integers, each seed once"),
        ("reference", exp.reference in set(names), f"must name one of the listed strategies ({', '.join(names)})"),
        ("metric", exp.metric in METRICS, f"must be one of {', '.join(METRICS)}"),
        ("curve_split", exp.curve_split in ("val", "test"), "must be val or test"),
        ("curve_split", exp.curve_split == "val" or exp.synthetic or exp.base.data.test,
         "is test but base.data.test is not set"),
        ("parallel_trials", exp.parallel_trials == "auto" or (
            isinstance(exp.parallel_trials, int) and exp.parallel_trials >= 1), "must be an integer >= 1 or auto"),
        ("zipf", exp.zipf > 0, "must be a number > 0"),
        ("base.protocol.cycles", exp.base.protocol.cycles >= 1, "must be >= 1 in an experiment"),
        ("base.protocol.simulate", exp.base.protocol.simulate, "must be true: experiments need the oracle"),
    ]
    for name, ok, rule in checks:
        if not ok:
            value = getattr(exp, name, None) if "." not in name and name != "strategies" else None
            raise ConfigError(f"{name}: {rule}" + (f", got {value!r}" if value is not None else ""))


def load_experiment(path: str | Path, overrides: list[str] | None = None,
                    base: dict | None = None) -> ExperimentConfig:
    """YAML → ExperimentConfig; ``overrides`` are ``--set`` items as for `taast run`
    (``field=value`` or ``base.section.field=value``); ``base``: run settings under the file's
    ``base:`` (a preset)."""
    values = read_yaml_mapping(path)
    if base:
        values["base"] = merge_settings(base, values.get("base") or {})
    return experiment_from_dict(apply_overrides(values, overrides))


def trial_config(exp: ExperimentConfig, variant_data: dict, spec: StrategySpec, seed: int) -> TaastConfig:
    """The run configuration of one trial: the base with this strategy, seed and dataset."""
    b = exp.base
    data = replace(b.data, **variant_data)
    if exp.shares_training:
        # trained and checked on the unshifted val; each variant's test curve comes afterwards
        data = replace(data, test=None)
    elif exp.curve_split == "test":
        data = replace(data, val=data.test)
    return replace(b, data=data, selection=replace(b.selection, strategy=spec.strategy, seed=seed),
                   protocol=replace(b.protocol, pseudo_labels=spec.pseudo_labels, seeds=[seed]))
