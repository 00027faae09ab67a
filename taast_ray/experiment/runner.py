"""``taast experiment``: strategies × seeds × cycles over one or more datasets, resumable by trial.

The experiment directory is :mod:`taast_ray.experiment.layout`'s. Every strategy of a seed starts
from the same L0, U and warm-up model, so the warm-up is trained once per (variant, seed) and
copied into each trial. Trials run in the driver one after the other (``parallel_trials: 1``) or
as Ray tasks, several at once, each asking the cluster for its own actor pools and Ray Train
workers. A trial is a `taast run` directory with its stage markers, so a re-run with ``--resume``
picks each trial up at its first unfinished stage.

Label-shift variants scored on the test split (``curve_split: test``) differ only in that split, so
bases and trials live under the shared name ``Variant.trains_as`` (``empty50``) and train once; a
curve job per variant then scores each cycle's model on the variant's own test split.
"""
from __future__ import annotations

import functools
import shutil
import time
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from taast_ray.config import save_with_versions
from taast_ray.errors import InputError
from taast_ray.experiment.config import ExperimentConfig, StrategySpec, Variant, trial_config
from taast_ray.experiment.layout import CURVES_STAGE, CurvesLayout, ExperimentLayout
from taast_ray.console import say
from taast_ray.io import mark_done, read_json
from taast_ray.loop.layout import WARMUP_FILES, RunLayout


@dataclass(frozen=True)
class Trial:
    variant: Variant
    strategy: StrategySpec
    seed: int
    directory: Path
    base: Path
    curves: Path | None = None  # shared training: this variant's per-cycle metrics on its test split

    @property
    def run(self) -> RunLayout:
        return RunLayout(self.directory)

    @property
    def base_run(self) -> RunLayout:
        return RunLayout(self.base)

    @property
    def label(self) -> str:
        return f"{self.variant.name}/{self.strategy.name}/seed_{self.seed}"

    @property
    def run_label(self) -> str:
        """The training run's name: the shared one where variants train alike."""
        return f"{self.variant.trains_as}/{self.strategy.name}/seed_{self.seed}"

    @property
    def warmup_label(self) -> str:
        return f"warm-up {self.variant.trains_as}/seed_{self.seed}"


def unique_runs(trials: list[Trial]) -> list[Trial]:
    """The trials' training runs, each once, in plan order (shared training: the first variant's)."""
    seen: dict[Path, Trial] = {}
    for t in trials:
        seen.setdefault(t.directory, t)
    return list(seen.values())


def plan(exp: ExperimentConfig, out: Path) -> list[Trial]:
    """One trial per variant, seed and strategy; trials of variants that train alike share their
    directory and base (``Variant.trains_as``) and keep their own curves."""
    layout = ExperimentLayout(out)
    return [Trial(v, s, seed, layout.trial(v.trains_as, s.name, seed), layout.base(v.trains_as, seed),
                  layout.curves(v.name, s.name, seed) if exp.shares_training else None)
            for v in exp.variants for seed in exp.seeds for s in exp.strategies]


def training_variants(exp: ExperimentConfig) -> dict[str, Variant]:
    """Each shared training name → the first variant that trains as it (whose train/val it uses)."""
    out: dict[str, Variant] = {}
    for v in exp.variants:
        out.setdefault(v.trains_as, v)
    return out


def variant_data(exp: ExperimentConfig, variant: Variant, out: Path) -> dict:
    """The data section for this variant: the user's files, or a synthetic set made once."""
    from taast_ray.loop.sources import synthetic_dataset

    d = exp.base.data
    if not exp.synthetic:
        return {"train": d.train, "val": d.val, "test": d.test, "images": d.images}
    data = synthetic_dataset(
        ExperimentLayout(out).dataset(variant.name), d, seed=exp.data_seed, zipf=exp.zipf,
        note=f"dataset {variant.name}: {d.synthetic_images} synthetic images (empty share "
             f"{variant.empty_fraction:.0%}, label shift {variant.label_shift or 'none'})",
        empty_fraction=variant.empty_fraction, label_shift=variant.label_shift)
    return {"train": str(data.train), "val": str(data.val), "test": str(data.test), "images": str(data.images)}


def run_base(cfg_dict: dict, base: str) -> None:
    """Split and warm-up for one (variant, seed): a `taast run` with no cycles and no test."""
    from taast_ray.config import config_from_dict
    from taast_ray.loop.cycle import run_cycles

    cfg = config_from_dict(cfg_dict)
    cfg = replace(cfg, data=replace(cfg.data, test=None), protocol=replace(cfg.protocol, cycles=0))
    run_cycles(cfg, base, resume=True)


def run_trial(cfg_dict: dict, directory: str, base: str) -> list[dict]:
    """Cycles 1..T of one strategy and seed, starting from the base's split and warm-up."""
    from taast_ray.config import config_from_dict
    from taast_ray.loop.cycle import run_cycles

    cfg = config_from_dict(cfg_dict)
    run, base_run = RunLayout(Path(directory)), RunLayout(Path(base))
    if trial_finished(run, cfg.protocol.cycles):
        return read_json(run.cycles_json)
    if not run.warmup.done("evaluate"):
        shutil.rmtree(run.root, ignore_errors=True)
        shutil.copytree(base_run.data, run.data)
        run.warmup.dir.mkdir(parents=True)
        for name in WARMUP_FILES:
            shutil.copyfile(base_run.warmup.dir / name, run.warmup.dir / name)
        shutil.copytree(base_run.warmup.markers, run.warmup.markers)
    rows = run_cycles(cfg, run.root, resume=True)
    mark_done(run.markers, "trial", {"cycles": cfg.protocol.cycles})
    return rows


def trial_finished(run: RunLayout, cycles: int) -> bool:
    """Done, and with this many cycles: ``--resume`` with more cycles grows a finished trial from
    its last one (its earlier cycles and their models are kept; fewer cycles are not undone)."""
    if not run.done("trial"):
        return False
    recorded = read_json(run.marker("trial")).get("cycles")
    if recorded is None:  # a marker from before it recorded its cycles: count the rows
        recorded = len(read_json(run.cycles_json)) - 1 if run.cycles_json.exists() else cycles
    return recorded >= cycles


def _scored_cycle(marker: Path, cycles: int) -> bool:
    """The test stage's marker scored the model of cycle ``cycles`` (loop.stages.stage's ``of``)."""
    try:
        return read_json(marker).get("cycle", cycles) == cycles
    except (OSError, ValueError):
        return False


def run_curves(cfg_dict: dict, directory: str, curves: str, test: str, images: str, cycles: int) -> None:
    """A shared trial's models, warm-up and cycles 1..T, scored on one variant's test split."""
    from taast_ray.config import config_from_dict
    from taast_ray.io import write_json
    from taast_ray.loop.train import evaluate_weights

    cfg, run, curves = config_from_dict(cfg_dict), RunLayout(Path(directory)), CurvesLayout(Path(curves))
    if curves.finished(cycles):
        return
    start = time.monotonic()
    for t in range(cycles + 1):
        target = curves.score(t)
        if target.exists():
            continue
        # the warm-up is the seed's, copied into every strategy's run: scored once per variant and seed
        scored_in = curves.warmup if t == 0 else curves
        source = scored_in.score(t)
        if not source.exists():
            write_json(source, evaluate_weights(cfg, run.cycle(t).weights, Path(test), Path(images),
                                                scored_in.predictions(t), run.labels_l0))
        if source != target:
            write_json(target, read_json(source))
    mark_done(curves.markers, CURVES_STAGE, {"seconds": round(time.monotonic() - start, 3), "cycles": cycles})


def _parallelism(exp: ExperimentConfig) -> int:
    if exp.parallel_trials != "auto":
        return int(exp.parallel_trials)
    import ray

    res = ray.cluster_resources()
    return max(1, int(res.get("GPU", 0)) or int(res.get("CPU", 1)) // 4)


@dataclass(frozen=True)
class Job:
    fn: object
    args: tuple
    label: str
    needs: str | None = None   # the label of a job that must finish first


def _run_jobs(jobs: list[Job], parallel: int) -> None:
    """In the driver, in order, when ``parallel`` is 1; else as Ray tasks, ``parallel`` at once,
    each started as soon as the job it needs has finished (a seed's trials after its warm-up)."""
    if parallel <= 1:
        for job in jobs:
            say(f"experiment: {job.label}")
            job.fn(*job.args)
        return
    import ray

    # 0 CPUs: the trial only coordinates; its actor pools and Ray Train workers hold the resources
    remote = {job.fn: ray.remote(num_cpus=0, max_retries=0)(job.fn) for job in jobs}
    pending, running, finished = list(jobs), {}, set()
    labels = {job.label for job in jobs}
    while pending or running:
        ready = [j for j in pending if j.needs is None or j.needs in finished or j.needs not in labels]
        for job in ready[:max(parallel - len(running), 0)]:
            pending.remove(job)
            say(f"experiment: {job.label} (Ray task)")
            running[remote[job.fn].remote(*job.args)] = job.label
        done, _ = ray.wait(list(running), num_returns=1)
        label = running.pop(done[0])
        ray.get(done[0])  # a failed trial stops the experiment; --resume continues from its stages
        finished.add(label)
        say(f"experiment: {label} finished")


class Progress:
    """Which trial, cycle and stage; stages done of all; time left from the stages' own timings.

    Every stage marker records its seconds. The time left is, for each stage not done yet, the
    mean time of the finished stages of its kind (warm-up training, a cycle's selection, ...),
    summed and divided by the trials running at once.
    """

    def __init__(self, exp: ExperimentConfig, trials: list[Trial], parallel: int = 1, interval: float = 60.0):
        self.parallel, self.interval = max(parallel, 1), interval
        self.cycles = exp.base.protocol.cycles
        self.expected: list[tuple[str, Path]] = []
        for base in sorted({t.base for t in trials}):
            self.expected += RunLayout(base).expected_markers(0, test=False)
        self.trials = unique_runs(trials)
        test = not exp.shares_training
        # markers that may be from fewer cycles (a finished study resumed with more): done only if current
        self._current: dict[Path, Callable[[], bool]] = {}
        for t in self.trials:
            self.expected += t.run.expected_markers(self.cycles, warmup=False, test=test)
            self.expected.append(("trial", t.run.marker("trial")))
            self._current[t.run.marker("trial")] = functools.partial(trial_finished, t.run, self.cycles)
            if test:
                self._current[t.run.marker("test")] = functools.partial(_scored_cycle, t.run.marker("test"),
                                                                        self.cycles)
        # shared training: each variant's test curves are a job of their own after the run
        for t in trials:
            if t.curves is not None:
                curves = CurvesLayout(t.curves)
                self.expected.append(("curves", curves.marker(CURVES_STAGE)))
                self._current[curves.marker(CURVES_STAGE)] = functools.partial(curves.finished, self.cycles)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def seconds_left(self) -> tuple[int, float | None]:
        """(stages done, estimated seconds left or None before any stage of a kind has finished)."""
        times: dict[str, list[float]] = {}
        missing: list[str] = []
        for kind, marker in self.expected:
            if marker.exists():  # a stale marker still tells how long its kind takes
                try:
                    times.setdefault(kind, []).append(float(read_json(marker).get("seconds", 0.0)))
                except (OSError, ValueError):
                    times.setdefault(kind, []).append(0.0)
            if not marker.exists() or not self._current.get(marker, lambda: True)():
                missing.append(kind)
        if any(kind not in times and kind != "trial" for kind in missing):
            return len(self.expected) - len(missing), None
        work = sum(sum(times[k]) / len(times[k]) for k in missing if k != "trial")
        return len(self.expected) - len(missing), work / self.parallel

    def running(self) -> list[str]:
        where = []
        for i, t in enumerate(self.trials):
            if not t.run.warmup.dir.exists() or trial_finished(t.run, self.cycles):
                continue
            for c in range(1, self.cycles + 1):
                left = t.run.cycle(c).first_unfinished()
                if left:
                    where.append(f"trial {i + 1}/{len(self.trials)} {t.run_label} cycle {c} {left}")
                    break
        return where

    def line(self) -> str:
        done, left = self.seconds_left()
        eta = f", about {left / 60:.0f} min left" if left is not None else ""
        running = self.running()
        return (f"experiment: {done}/{len(self.expected)} stages done{eta}"
                + (f"; at {'; '.join(running)}" if running else ""))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            say(self.line())

    def __enter__(self) -> "Progress":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()


def check_fresh(out: Path, resume: bool) -> None:
    """A new experiment needs an empty directory; the lock file the CLI takes first does not count."""
    from taast_ray.lock import holds_work

    if not resume and holds_work(out):
        raise InputError(f"{out}: experiment directory is not empty (use --resume to continue it)")


def run_experiment(exp: ExperimentConfig, out: str | Path, *, resume: bool = False,
                   progress_interval: float = 60.0, command: str | None = None) -> dict:
    """Every trial to completion, then results.json, report.md and the plots (``command``: how
    the report says it was made)."""
    from taast_ray.experiment.report import collect_results, write_report
    from taast_ray.ray_env import ensure_ray

    out = Path(out)
    check_fresh(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    save_with_versions(exp.to_dict(), ExperimentLayout(out).config)
    ensure_ray(exp.base.ray.address, worker_logs=exp.base.ray.worker_logs)
    trials = plan(exp, out)
    runs = unique_runs(trials)  # shared training: each run once
    parallel = _parallelism(exp)
    say(f"experiment {exp.name}: {len(exp.variants)} dataset(s) × {len(exp.seeds)} seed(s) × "
        f"{len(exp.strategies)} strategies = {len(trials)} trials of {exp.base.protocol.cycles} cycles, "
        f"{parallel} at a time" + (f"; the label shifts share training: {len(runs)} "
                                   f"training runs, each scored on every shift's test split"
                                   if exp.shares_training else ""))
    data = {v.name: variant_data(exp, v, out) for v in exp.variants}
    trains = {name: data[v.name] for name, v in training_variants(exp).items()}  # whose train/val
    configs = {t: trial_config(exp, trains[t.variant.trains_as], t.strategy, t.seed).to_dict() for t in trials}
    bases: dict[Path, Job] = {}
    for t in trials:
        bases.setdefault(t.base, Job(run_base, (configs[t], str(t.base)), t.warmup_label))
    # a finished warm-up is not scheduled again; its trials' `needs` then points at no job
    bases = {b: job for b, job in bases.items() if not RunLayout(b).warmup.done("evaluate")}
    labels = {t.directory: f"trial {runs.index(t) + 1}/{len(runs)} {t.run_label}" for t in runs}
    todo = [Job(run_trial, (configs[t], str(t.directory), str(t.base)), labels[t.directory], t.warmup_label)
            for t in runs if not trial_finished(t.run, exp.base.protocol.cycles)]
    if exp.shares_training:
        todo += [Job(run_curves, (configs[t], str(t.directory), str(t.curves), data[t.variant.name]["test"],
                                  data[t.variant.name]["images"], exp.base.protocol.cycles),
                     f"test curves {t.label}", labels[t.directory])
                 for t in trials if not CurvesLayout(t.curves).finished(exp.base.protocol.cycles)]
    with Progress(exp, trials, parallel, progress_interval) as progress:
        _run_jobs(list(bases.values()) + todo, parallel)
        say(progress.line())
    results = collect_results(exp, out, trials, data)
    write_report(exp, out, results, command)
    return results
