"""The run directory of ``taast run``: every path and stage name, in one place.

    RUN/config.yaml          the configuration, with software versions
    RUN/synthetic/           the synthetic dataset, when no data.train is given
    RUN/data/                the split: labels_L0.json, pool.parquet (U)
    RUN/cycle_0/             warm-up on L0: dataset, train, evaluate
    RUN/cycle_<t>/           pool.parquet, select/, labels_new.json (Q's labels), labels.json
                             (L ∪ Q), train_set.json + yolo/ (L ∪ Q ∪ P), weights.pt, metrics.json
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

SPLIT_STAGE = "split"
TRAIN_STAGES = ("dataset", "train", "evaluate")      # a warm-up is these alone
CYCLE_STAGES = ("pool", "select", "annotate") + TRAIN_STAGES
RUN_STAGES = ("test", "trial")                       # on the run itself; "trial" in experiments
# what a trial needs of a shared warm-up (its yolo/ and train/ folders are not reused)
WARMUP_FILES = ("weights.pt", "metrics.json", "train_set.json")


@dataclass(frozen=True)
class CycleLayout:
    dir: Path

    @property
    def index(self) -> int:
        return int(self.dir.name.split("_")[1])

    @property
    def markers(self) -> Path:
        return self.dir / "_markers"

    def marker(self, stage: str) -> Path:
        return self.markers / f"{stage}.done"

    def done(self, stage: str) -> bool:
        return is_done(self.markers, stage)

    def first_unfinished(self) -> str | None:
        stages = TRAIN_STAGES if self.index == 0 else CYCLE_STAGES
        return next((s for s in stages if not self.done(s)), None)

    pool = property(lambda self: self.dir / "pool.parquet")
    select = property(lambda self: self.dir / "select")
    selection = property(lambda self: self.dir / "select" / "selection.parquet")
    scores = property(lambda self: self.dir / "select" / "scores.parquet")
    pseudo_labels = property(lambda self: self.dir / "select" / "pseudo_labels.json")
    select_summary = property(lambda self: self.dir / "select" / "summary.json")
    label_studio_tasks = property(lambda self: self.dir / "select" / "label_studio_tasks.json")
    labels_new = property(lambda self: self.dir / "labels_new.json")
    labels = property(lambda self: self.dir / "labels.json")
    train_set = property(lambda self: self.dir / "train_set.json")
    yolo = property(lambda self: self.dir / "yolo")
    train = property(lambda self: self.dir / "train")
    weights = property(lambda self: self.dir / "weights.pt")
    metrics = property(lambda self: self.dir / "metrics.json")
    val_predictions = property(lambda self: self.dir / "val_predictions.json")
    coverage = property(lambda self: self.dir / "coverage.json")  # boxes on the pool, pre-selection
    tail = property(lambda self: self.dir / "tail.json")          # simulation: the tail lift


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.yaml")
    synthetic = property(lambda self: self.root / "synthetic")
    data = property(lambda self: self.root / "data")
    labels_l0 = property(lambda self: self.root / "data" / "labels_L0.json")
    pool = property(lambda self: self.root / "data" / "pool.parquet")
    embedding_cache = property(lambda self: self.root / "embedding_cache")
    test_metrics = property(lambda self: self.root / "test_metrics.json")
    test_predictions = property(lambda self: self.root / "test_predictions.json")
    cycles_json = property(lambda self: self.root / "cycles.json")
    markers = property(lambda self: self.root / "_markers")

    def split_marker(self) -> Path:
        return self.data / "_markers" / f"{SPLIT_STAGE}.done"

    def marker(self, stage: str) -> Path:
        return self.markers / f"{stage}.done"

    def done(self, stage: str) -> bool:
        return is_done(self.markers, stage)

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
        """(kind, marker) of every stage a run of ``cycles`` cycles finishes, in order."""
        out: list[tuple[str, Path]] = []
        if warmup:
            out.append(("warm-up split", self.split_marker()))
            out += [(f"warm-up {s}", self.warmup.marker(s)) for s in TRAIN_STAGES]
        out += [(s, self.cycle(c).marker(s)) for c in range(1, cycles + 1) for s in CYCLE_STAGES]
        if test:
            out.append(("test", self.marker("test")))
        return out
