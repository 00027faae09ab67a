"""``taast run``: T active-learning cycles (SPEC.md §1 steps 1–6, §6), resumable stage by stage.

One loop for a simulation and a team's own run: what differs (the splits, the warm-up, how labels
join L, who labels) is the data source's and its label source's (:mod:`taast_ray.loop.sources`).
A cycle is a list of stages, pool → select → tail (where the pool's truth is known) → annotate →
dataset/train/evaluate, each given the run and this cycle's state (its folder, L so far, the model
that selects) as values. The run directory's layout and stage names are
:mod:`taast_ray.loop.layout`'s. Every stage ends with a marker; ``resume`` skips marked stages,
and each stage is deterministic given the ones before it, so a resumed run ends where an
uninterrupted one would.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from taast_ray.config import TaastConfig, config_from_dict, read_yaml_mapping, save_config
from taast_ray.errors import InputError
from taast_ray.io import read_json, write_json
from taast_ray.lock import holds_work
from taast_ray.loop.layout import CycleLayout, RunLayout
from taast_ray.loop.rows import cycle_row
from taast_ray.loop.select import select_stage, tail_stage, write_cycle_pool
from taast_ray.loop.sources import OwnData, Simulation, open_source
from taast_ray.loop.stages import stage
from taast_ray.loop.train import evaluate_weights, train_and_evaluate


@dataclass(frozen=True)
class Run:
    """What every stage reads: the configuration, the layout, where data and labels come from."""
    cfg: TaastConfig
    layout: RunLayout
    source: Simulation | OwnData
    resume: bool


@dataclass(frozen=True)
class Cycle:
    """One cycle's state: its folder, L before it, and the model that selects (the previous
    cycle's, the warm-up's, or the start weights)."""
    files: CycleLayout
    labels: Path
    weights: Path


def as_run(cfg: TaastConfig) -> TaastConfig:
    """The configuration a run's cycles use: the pool is scored at the size its detector was trained
    at (validate_for_run), whatever model.imgsz says."""
    return replace(cfg, model=replace(cfg.model, imgsz=cfg.train.imgsz))


def saved_run_config(run_dir: str | Path) -> TaastConfig:
    """A run's configuration as its cycles used it, read back from its config.yaml."""
    values = read_yaml_mapping(RunLayout(Path(run_dir)).config)
    values.pop("versions", None)
    return as_run(config_from_dict(values))


def pool(run: Run, cycle: Cycle) -> None:
    labelled = {run.source.key(img) for img in read_json(cycle.labels)["images"]}
    stage(cycle.files.dir, "pool", run.resume,
          lambda: write_cycle_pool(run.layout.pool, labelled, cycle.files.pool))


def select(run: Run, cycle: Cycle) -> None:
    select_stage(run.cfg, cycle.files, cycle.labels, cycle.weights, run.resume, run.layout.embedding_cache,
                 run.source.labeller.truth, labelled_images=run.source.data.images)


def tail(run: Run, cycle: Cycle) -> None:
    tail_stage(cycle.files, run.source.labeller.truth, run.layout.labels_l0, run.resume)


def annotate(run: Run, cycle: Cycle) -> None:
    run.source.labeller.annotate(cycle.files, run.resume)


def learn(run: Run, cycle: Cycle) -> None:
    """L ∪ Q as the data source joins them (kept as the cycle's labels.json, L of the next), with
    this cycle's pseudo labels P, fine-tuned from the selecting model."""
    cfg, files = run.cfg, cycle.files
    labels = run.source.merge(read_json(cycle.labels), read_json(files.labels_new), files)
    write_json(files.labels, labels)
    pseudo = run.source.pseudo(labels, read_json(files.pseudo_labels)) if cfg.protocol.pseudo_labels else None
    train_and_evaluate(cfg, run.source.data, run.layout.labels_l0, files, labels, pseudo, str(cycle.weights),
                       cfg.train.epochs, run.resume)


def cycle_stages(run: Run) -> list[Callable[[Run, Cycle], None]]:
    """A cycle's stages in layout.CYCLE_STAGES' order; the tail only where the truth is known."""
    return [pool, select, *([tail] if run.source.labeller.truth is not None else []), annotate, learn]


def run_cycles(cfg: TaastConfig, run: str | Path, *, resume: bool = False) -> list[dict]:
    cfg.validate_for_run()
    layout = RunLayout(Path(run))
    if not resume and holds_work(layout.root):
        raise InputError(f"{layout.root}: run directory is not empty (use --resume to continue it)")
    layout.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, layout.config)
    cfg = as_run(cfg)
    source = open_source(cfg, layout, resume)
    state = Run(cfg, layout, source, resume)
    data, labels_l0 = source.data, read_json(layout.labels_l0)
    rows, weights = [], Path(cfg.model.weights)
    if source.warms_up(cfg, labels_l0):
        train_and_evaluate(cfg, data, layout.labels_l0, layout.warmup, labels_l0, None, cfg.model.weights,
                           cfg.train.warmup_epochs, resume)
        rows.append(cycle_row(layout.warmup, labels_l0))
        weights = layout.warmup.weights
    labels = layout.labels_l0
    for t in range(1, cfg.protocol.cycles + 1):
        cycle = Cycle(layout.cycle(t), labels, weights)
        for step in cycle_stages(state):
            step(state, cycle)
        rows.append(cycle_row(cycle.files, read_json(cycle.files.labels)))
        labels, weights = cycle.files.labels, cycle.files.weights
    if data.test is not None:
        # the final model's score, once; a run resumed with more cycles scores its new final model
        stage(layout.root, "test", resume, lambda: write_json(layout.test_metrics, evaluate_weights(
            cfg, weights, data.test, data.images, layout.test_predictions, layout.labels_l0,
            data.frequency_from)), of={"cycle": cfg.protocol.cycles})
    write_json(layout.cycles_json, rows)
    return rows
