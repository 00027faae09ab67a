"""``taast run`` refuses before work, and a failed first start leaves nothing behind (issue 16).

:func:`check_run_inputs` runs on the driver before Ray starts and before any file is written:
the configuration, the run directory, every data file (parsed, as the run will parse it), the
detector weights (loaded once) and the embedder (its weights resolvable: cached, or the hub
answers). Each problem is one line naming the field.

:func:`undo_failed_first_start` wraps a first start: when it fails before any cycle stage
finished (the split and the synthetic set are remade identically in seconds), everything it
wrote is removed, so the same command can simply be run again. Once a stage of a cycle has
finished (a trained warm-up is minutes of work) the files stay and ``--resume`` continues.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

from taast_ray.config import TaastConfig
from taast_ray.errors import ConfigError, InputError
from taast_ray.io import check_out_dir
from taast_ray.lock import LOCK_NAME, holds_work


def check_run_directory(run: Path, resume: bool) -> None:
    """A folder (or a place one can be made) that this user may write, empty unless resuming."""
    check_out_dir(run)  # neither it nor a folder above it is a file
    if not resume and holds_work(run):
        raise InputError(f"{run}: run directory is not empty (use --resume to continue it)")
    existing = next(p for p in (run, *run.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out: {existing} is not writable by this user")


def check_data_files(cfg: TaastConfig) -> int:
    """Parse every label file the run will read; the number of classes: the labelled set's (a
    simulation's data.train, a production run's data.labelled or data.yolo's names), or a
    synthetic set's setting."""
    from taast_ray.data.labels import load_labels

    d = cfg.data
    if d.yolo:
        from taast_ray.data.yolo_import import class_names, read_data_yaml

        try:
            spec, _ = read_data_yaml(d.yolo)
            return len(class_names(spec, Path(d.yolo)))
        except InputError as exc:
            raise ConfigError(f"data.yolo: {exc}") from None
    labelled = "labelled" if d.labelled else "train"
    if not getattr(d, labelled):
        return d.synthetic_classes
    if not Path(d.images).is_dir():
        raise ConfigError(f"data.images: {d.images} is not a folder")
    classes = None
    for field_name in (labelled, "val", "test"):
        path = getattr(d, field_name)
        if not path:
            continue
        try:
            labels = load_labels(path)
        except InputError as exc:
            raise ConfigError(f"data.{field_name}: {exc}") from None
        if classes is None:
            classes = labels.num_classes
        elif labels.num_classes != classes:
            raise ConfigError(f"data.{field_name}: {labels.num_classes} categories, data.{labelled} has {classes}")
    return classes


def check_run_inputs(cfg: TaastConfig, run: Path, resume: bool) -> None:
    """Everything a run can be refused for, before Ray starts and before any file is written."""
    from taast_ray.models.checks import check_embedder

    cfg.validate_for_run()
    check_run_directory(Path(run), resume)
    num_classes = check_data_files(cfg)
    check_start_model(cfg, num_classes)
    check_embedder(cfg.model.embedder, cfg.model.embedder_weights)


def check_start_model(cfg: TaastConfig, num_classes: int) -> None:
    """The detector loads; a model YAML is built with the data's classes; a .pt of any class count
    is taken (a team's own detector), and one whose classes are not the data's needs a warm-up
    on L to fit its head to them (train.warmup_epochs > 0)."""
    from taast_ray.models.checks import check_detector

    weights = cfg.model.weights
    from_yaml = weights.lower().endswith((".yaml", ".yml"))
    classes = check_detector(weights, num_classes if from_yaml else None)
    if classes != num_classes and cfg.train.warmup_epochs < 1:
        raise ConfigError(f"train.warmup_epochs: {weights} has {classes} classes, the labelled set has "
                          f"{num_classes}; a warm-up on it (> 0 epochs) fits the detector to them")


def _cycle_stage_finished(run: Path) -> bool:
    return any(run.glob("cycle_*/_markers/*.done"))


@contextlib.contextmanager
def undo_failed_first_start(run: Path, resume: bool, keep: tuple[type, ...] = ()) -> Iterator[None]:
    """On a first start that fails (an error, Ctrl-C) before any cycle stage finished, remove
    what it wrote; the run directory is then as it was (absent, or empty but for the lock).
    ``keep``: exceptions that are not failures (production's stop for annotators)."""
    run = Path(run)
    before = {p.name for p in run.iterdir()} if run.is_dir() else set()
    try:
        yield
    except keep:
        raise
    except BaseException:
        if resume:
            raise
        if _cycle_stage_finished(run):
            print(f"[taast] {run}: the finished stages are kept; run the same command with --resume "
                  f"to continue", file=sys.stderr)
            raise
        for path in run.iterdir() if run.is_dir() else ():
            if path.name not in before and path.name != LOCK_NAME:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        print(f"[taast] {run}: nothing of this start kept; the same command can be run again",
              file=sys.stderr)
        raise
