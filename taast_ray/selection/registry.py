"""The strategy registry: one record per selection strategy, the one place every layer reads.

A record says what a strategy is: its pure function (``strategies.py``), the value it ranks
eligible images by, how the rarity weight enters φ, which images it needs embeddings of, whether
it trains with pseudo labels by default, how warnings and reports name it, and, once it has been
dropped after a study, why. The configuration checks names here, the CLI's ``--help`` lists them,
the selection pass scores and selects through the record, and the experiment report pairs arms
by it. Adding a strategy is adding one record and its function (``register``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from taast_ray.selection.candidates import top_candidates
from taast_ray.selection.scoring import EXEMPLAR, VECTOR_RULES, ImageScores
from taast_ray.selection.strategies import (Picks, SelectionContext, diverse, diverse_balanced, select_coreset,
                                            select_random, top_by_value)

# the rules scoring knows: "class" w_{c(x)} (eq. 7); the ones that keep a row per image
# (scoring.VECTOR_RULES: "expected" Σ_k p_{k,b*} w_k, "box-balanced" max_b H(p_b)·exp(−σ p(l̂_b)) in
# place of φ, "exemplar" max_k w_k · max_b q_{k,b} from the boxes' likeness to L's, exemplar.py);
# "none" w ≡ 1
RARITY = ("class", *VECTOR_RULES, "none")
EMBEDS = (None, "candidates", "eligible")


@dataclass(frozen=True)
class Strategy:
    name: str
    select: Callable[[SelectionContext, np.ndarray | None], Picks] | None  # None once retired
    summary: str                       # one line: --help, the docs
    value: Callable[[ImageScores], np.ndarray] | None = None  # what it ranks eligible images by
    value_label: str | None = None     # that value as the degenerate-selection warnings name it
    rarity: str = "class"              # how w enters φ (RARITY)
    embeds: str | None = None          # whose embeddings it needs (EMBEDS): the top-q, every eligible
    pseudo_labels: bool = True         # an experiment arm trains with P unless it says otherwise
    baseline: int | None = None        # a comparison arm's place in reports, which pair TAAST-type arms
                                       # against these; None: a TAAST-type arm
    paper_rank: int | None = None      # the paper's claimed order TAAST > entropy > random (0 first)
    default_arm: bool = False          # an arm of an experiment that lists no strategies (the paper's)
    retired: str | None = None         # why it was dropped; a configuration naming it fails with this

    @property
    def rarity_rule(self) -> str:
        """The scoring rule of ``scoring.finish_scores`` (w ≡ 1 is its ``use_rarity=False``)."""
        return "class" if self.rarity == "none" else self.rarity

    @property
    def uses_rarity(self) -> bool:
        return self.rarity != "none"

    @property
    def needs_exemplars(self) -> bool:
        """Its pass needs L's class prototypes (the detector writes each image's posteriors)."""
        return self.rarity == EXEMPLAR

    def run(self, ctx: SelectionContext) -> Picks:
        return self.select(ctx, self.value(ctx.scored) if self.value is not None else None)

    def rows_to_embed(self, ctx: SelectionContext) -> np.ndarray:
        """Table rows whose embeddings it will ask for: the candidates when there are more than B
        of them (fewer: all are picked, nothing to cluster), every eligible image, or none."""
        eligible = ~ctx.scored.pseudo
        if self.embeds == "eligible":
            return np.flatnonzero(eligible)
        if self.embeds == "candidates":
            rows = top_candidates(self.value(ctx.scored), eligible, ctx.tie_rank, ctx.candidate_fraction,
                                  ctx.budget)
            return np.sort(rows) if len(rows) > ctx.budget else np.zeros(0, np.int64)
        return np.zeros(0, np.int64)


def phi(scored: ImageScores) -> np.ndarray:
    """φ(x) = w · E(x), under whichever rarity rule scored it."""
    return scored.value


def entropy(scored: ImageScores) -> np.ndarray:
    """E(x) (eq. 2)."""
    return scored.entropy


def phi_of_rule(scored: ImageScores) -> np.ndarray:
    """The value of a rarity rule other than the paper's (φ(x) = w(x) · E(x); the class-balanced
    rule's a(x)); refuses scores made without it."""
    if scored.image_weight is None:
        raise ValueError("a tail-aware variant needs scores made with its rarity rule (Strategy.rarity_rule)")
    return scored.value


_STUDY_A = "benchmarks/results/study_a_tail"
REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("taast", diverse, "the paper's formula: top-q by φ = w_{c(x)}·E(x), k-means, nearest to each mean",
             phi, "φ(x)", embeds="candidates", paper_rank=0, default_arm=True),
    Strategy("entropy", top_by_value, "the top B eligible images by E(x)", entropy, "E(x)",
             pseudo_labels=False, baseline=1, paper_rank=1, default_arm=True),
    Strategy("random", select_random, "uniform over the pool, seeded", pseudo_labels=False, baseline=0,
             paper_rank=2, default_arm=True),
    Strategy("coreset", select_coreset, "k-center greedy on the embeddings from the labelled set's",
             embeds="eligible", pseudo_labels=False, baseline=2, default_arm=True),
    Strategy("class-balanced", top_by_value, "the literature's box-level class-balanced score (arXiv "
             "2508.17849): the top B eligible images by a(x) = max over boxes of H(p_b)·exp(−σ·p(class))",
             phi_of_rule, "a(x)", rarity="box-balanced", pseudo_labels=False, baseline=3),
    Strategy("taast-no-diversity", top_by_value, "ablation: the top B eligible images by φ", phi, "φ(x)"),
    Strategy("taast-no-rarity", diverse, "ablation: taast with w ≡ 1 (ranks by E(x))", entropy, "E(x)",
             rarity="none", embeds="candidates"),
    Strategy("taast-expected", diverse, "taast with w(x) = Σ_k p_{k,b*} w_k, the rarity expected under b*",
             phi_of_rule, "φ(x)", rarity="expected", embeds="candidates"),
    Strategy("taast-exemplar", diverse, "taast with exemplar rarity: w(x) = max_k w_k·max_b q_{k,b}, q a "
             "box's class posterior from its likeness to L's boxes (no need for the detector to name the class)",
             phi_of_rule, "φ(x)", rarity="exemplar", embeds="candidates"),
    Strategy("taast-balanced", diverse_balanced, "taast, then at most a cap of the B picks per class c(x)",
             phi, "φ(x)", embeds="candidates"),
    Strategy("taast-maxrare", None, "φ with the rarest plausible class",
             retired=f"dropped after study (a), where it tied taast ({_STUDY_A}); use taast-expected or "
                     f"taast-balanced"),
    Strategy("taast-expected-balanced", None, "taast-expected's φ with taast-balanced's cap",
             retired=f"dropped after study (a), where, from the same warm-ups, it fell below taast-expected on "
                     f"both seeds run and below taast on one ({_STUDY_A}); use taast-expected or taast-balanced"),
)}
DEFAULT = next(s.name for s in REGISTRY.values() if s.paper_rank == 0)  # the paper's formula


def register(strategy: Strategy) -> Strategy:
    """Add a strategy (its record and pure function) to every layer that reads the registry."""
    if strategy.rarity not in RARITY or strategy.embeds not in EMBEDS:
        raise ValueError(f"{strategy.name}: rarity must be one of {RARITY}, embeds one of {EMBEDS}")
    if strategy.embeds == "candidates" and strategy.value is None:
        raise ValueError(f"{strategy.name}: choosing candidates to embed needs a ranking value")
    REGISTRY[strategy.name] = strategy
    return strategy


def names() -> tuple[str, ...]:
    """The strategies a configuration may name, in the registry's order."""
    return tuple(n for n, s in REGISTRY.items() if s.retired is None)


def retired() -> dict[str, str]:
    return {n: s.retired for n, s in REGISTRY.items() if s.retired is not None}


def baselines() -> tuple[str, ...]:
    """The comparison arms, in the order reports list them."""
    return tuple(sorted((n for n in names() if REGISTRY[n].baseline is not None), key=lambda n: REGISTRY[n].baseline))


def is_baseline(name: str) -> bool:
    """A comparison arm (retired names included: committed studies still read)."""
    return name in REGISTRY and REGISTRY[name].baseline is not None


def default_arms() -> tuple[str, ...]:
    """An experiment's arms when it lists none: the paper's baselines, then its formula."""
    arms = [n for n in names() if REGISTRY[n].default_arm]
    return tuple(sorted(arms, key=lambda n: (REGISTRY[n].baseline is None, REGISTRY[n].baseline or 0)))


def paper_order() -> tuple[str, ...]:
    """The names of the paper's claim TAAST > entropy > random, in that order."""
    ranked = [s for s in REGISTRY.values() if s.paper_rank is not None]
    return tuple(s.name for s in sorted(ranked, key=lambda s: s.paper_rank))


def strategy(name: str) -> Strategy:
    """The active record of ``name``; ValueError (naming why) for a retired or unknown one."""
    record = REGISTRY.get(name)
    if record is None or record.retired is not None:
        raise ValueError(f"{name} was {record.retired}" if record is not None
                         else f"unknown strategy {name!r}: one of {', '.join(names())}")
    return record
