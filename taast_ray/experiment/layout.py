"""The experiment directory of ``taast experiment``: every path, in one place.

    EXP/experiment.yaml                     the configuration, with software versions
    EXP/datasets/<variant>/                 synthetic data (one per sweep point)
    EXP/bases/<variant>/seed_<s>/           the split (L0, U) and the warm-up on L0 for this seed
    EXP/trials/<variant>/<strategy>/seed_<s>/   a `taast run` directory, cycles 1..T
    EXP/curves/<variant>/<strategy>/seed_<s>/   shared training only: cycle_<t>.json, each cycle's
                                            model scored on this variant's own test split
    EXP/curves/<variant>/_warm-up/seed_<s>/ the warm-up's score, shared by the seed's strategies
    EXP/results.json, EXP/report.md, EXP/plots/*.png

Bases and trials are named by ``Variant.trains_as`` (variants that differ only in their test
split train once); a base and a trial are run directories (loop/layout.py). The runner writes
this layout, its progress estimate and the report read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taast_ray.loop.layout import Markers, Under

CURVES_STAGE = "curves"


@dataclass(frozen=True)
class ExperimentLayout:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    config = Under("experiment.yaml")
    results = Under("results.json")
    report = Under("report.md")
    plots = Under("plots")

    def plot(self, name: str) -> Path:
        return self.plots / name

    def dataset(self, variant: str) -> Path:
        return self.root / "datasets" / variant

    def base(self, trains_as: str, seed: int) -> Path:
        return self.root / "bases" / trains_as / f"seed_{seed}"

    def trials(self, trains_as: str) -> Path:
        """The trials of the variants that train as ``trains_as``: <strategy>/seed_<s>/ under it."""
        return self.root / "trials" / trains_as

    def trial(self, trains_as: str, strategy: str, seed: int) -> Path:
        return self.trials(trains_as) / strategy / f"seed_{seed}"

    def curves(self, variant: str, strategy: str, seed: int) -> Path:
        return self.root / "curves" / variant / strategy / f"seed_{seed}"


@dataclass(frozen=True)
class CurvesLayout(Markers):
    """One trial's test curve on one variant's test split: a score per cycle, then a marker."""
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def score(self, cycle: int) -> Path:
        return self.root / f"cycle_{cycle}.json"

    def predictions(self, cycle: int) -> Path:
        return self.root / f"cycle_{cycle}_predictions.json"

    @property
    def warmup(self) -> "CurvesLayout":
        """EXP/curves/<variant>/_warm-up/seed_<s>: the warm-up is the seed's, copied into every
        strategy's run, so it is scored once per variant and seed."""
        return CurvesLayout(self.root.parent.parent / "_warm-up" / self.root.name)

    def finished(self, cycles: int) -> bool:
        """Every cycle up to ``cycles`` scored (the trial may have grown since the marker)."""
        return self.marker(CURVES_STAGE).exists() and all(self.score(t).exists() for t in range(cycles + 1))
