"""The run directory of ``taast run``: every path and stage name, in one place.

    RUN/config.yaml          the configuration, with software versions
    RUN/synthetic/           the synthetic dataset, when no data.train is given
    RUN/data/                the split: labels_L0.json, pool.parquet (U); production: L keyed
                             like the pool, imported/ (data.yolo), fetched/ (object-store images)
    RUN/cycle_0/             warm-up on L0: dataset, train, evaluate
    RUN/cycle_<t>/           pool.parquet, select/ (detections/ first, then the selection's output
                             set), coverage.json, tail.json (simulation), labels_new.json (Q's
                             labels; ingest.json: what `taast ingest` took), labels.json (L ∪ Q),
                             train_set.json + yolo/ (L ∪ Q ∪ P), weights.pt, metrics.json
    RUN/embedding_cache/     embeddings by (image_id, model), shared by the cycles
    RUN/test_metrics.json    the last model on the test split
    RUN/cycles.json          one row per cycle

Every stage ends with a marker ``<dir>/_markers/<stage>.done`` recording its seconds. The loop
writes this layout; the experiment runner, its progress estimate and its report read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taast_ray.io import is_done

SPLIT_STAGE = "split"                                # simulation: L0 and U from data.train
IMPORT_STAGE, PREPARE_STAGE = "import", "prepare"    # production: data.yolo read in; L and U keyed
TRAIN_STAGES = ("dataset", "train", "evaluate")      # a warm-up is these alone
# a cycle's stages in the order the loop runs them; tail only where the pool's truth is known
CYCLE_STAGES = ("pool", "select", "tail", "annotate") + TRAIN_STAGES
# what progress waits for and times: a production cycle writes no tail marker, and a simulation's
# tail is a moment's arithmetic on what select wrote
COUNTED_STAGES = tuple(s for s in CYCLE_STAGES if s != "tail")
DROPPED_LABELS = "annotations.json"  # a cycle's labels left in its folder are ingested on resume
# what a trial needs of a shared warm-up (its yolo/ and train/ folders are not reused)
WARMUP_FILES = ("weights.pt", "metrics.json", "train_set.json")


class Under:
    """A path under the layout's root: ``weights = Under("weights.pt")`` (the experiment's
    layout uses it too)."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, layout, owner=None) -> Path:
        return self if layout is None else layout.root.joinpath(*self.parts)


class Markers:
    """A directory whose stages leave ``_markers/<stage>.done``."""
    markers = Under("_markers")

    def marker(self, stage: str) -> Path:
        return self.markers / f"{stage}.done"

    def done(self, stage: str) -> bool:
        return is_done(self.markers, stage)


@dataclass(frozen=True)
class CycleLayout(Markers):
    dir: Path

    @property
    def index(self) -> int:
        return int(self.dir.name.split("_")[1])

    def first_unfinished(self) -> str | None:
        stages = TRAIN_STAGES if self.index == 0 else COUNTED_STAGES
        return next((s for s in stages if not self.done(s)), None)

    pool = Under("pool.parquet")
    select = Under("select")
    detections = Under("select", "detections")  # the detector's pass, before the selection
    selection = Under("select", "selection.parquet")
    scores = Under("select", "scores.parquet")
    pseudo_labels = Under("select", "pseudo_labels.json")
    select_summary = Under("select", "summary.json")
    label_studio_tasks = Under("select", "label_studio_tasks.json")
    labels_new = Under("labels_new.json")
    dropped_labels = Under(DROPPED_LABELS)
    ingest_record = Under("ingest.json")  # what `taast ingest` took, and what went back to the pool
    labels = Under("labels.json")
    train_set = Under("train_set.json")
    yolo = Under("yolo")
    train = Under("train")
    weights = Under("weights.pt")
    metrics = Under("metrics.json")
    val_predictions = Under("val_predictions.json")
    coverage = Under("coverage.json")  # boxes on the pool, before selecting
    tail = Under("tail.json")          # simulation: the tail lift

    @property
    def root(self) -> Path:
        return self.dir


@dataclass(frozen=True)
class RunLayout(Markers):
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    config = Under("config.yaml")
    synthetic = Under("synthetic")
    data = Under("data")
    labels_l0 = Under("data", "labels_L0.json")
    pool = Under("data", "pool.parquet")
    imported = Under("data", "imported")  # production: data.yolo as L, pool, val, test
    fetched = Under("data", "fetched")    # production: selected object-store images, for training
    embedding_cache = Under("embedding_cache")
    test_metrics = Under("test_metrics.json")
    test_predictions = Under("test_predictions.json")
    cycles_json = Under("cycles.json")

    def split_marker(self) -> Path:
        return self.data / "_markers" / f"{SPLIT_STAGE}.done"

    @property
    def warmup(self) -> CycleLayout:
        return self.cycle(0)

    def cycle(self, t: int) -> CycleLayout:
        return CycleLayout(self.root / f"cycle_{t}")

    def cycles(self) -> list[CycleLayout]:
        """The cycle directories that exist, in order (cycle_0 first)."""
        found = [p for p in self.root.glob("cycle_*") if p.name.split("_")[1].isdigit()]
        return [CycleLayout(p) for p in sorted(found, key=lambda p: int(p.name.split("_")[1]))]

    def expected_markers(self, cycles: int, *, warmup: bool = True, test: bool = True) -> list[tuple[str, Path]]:
        """(kind, marker) of every stage a run of ``cycles`` cycles finishes, in order (COUNTED_STAGES)."""
        out: list[tuple[str, Path]] = []
        if warmup:
            out.append(("warm-up split", self.split_marker()))
            out += [(f"warm-up {s}", self.warmup.marker(s)) for s in TRAIN_STAGES]
        out += [(s, self.cycle(c).marker(s)) for c in range(1, cycles + 1) for s in COUNTED_STAGES]
        if test:
            out.append(("test", self.marker("test")))
        return out
