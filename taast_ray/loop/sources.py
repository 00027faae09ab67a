"""Where a run's data and new labels come from: all that tells a simulation from a team's own run.

The loop (loop/cycle.py) is one; it asks its data source for the splits (a simulation splits
data.train into L0 and U, a team's run keys its own L and pool alike), whether a warm-up runs, how
an image is keyed, and how new and pseudo labels join L; and it asks the data source's label
source for a cycle's labels: the :class:`Oracle` (the training ground truth, at once) or
:class:`~taast_ray.loop.production.People` (annotators, through `taast ingest`). Only the oracle
knows the pool's truth, so only a simulation with it measures coverage and the tail on truth.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from taast_ray.config import DataConfig, TaastConfig
from taast_ray.console import say
from taast_ray.data.split import merge_labels, oracle_labels, split_labelled_pool
from taast_ray.io import read_json, write_json
from taast_ray.loop.layout import PREPARE_STAGE, SPLIT_STAGE, CycleLayout, RunLayout
from taast_ray.loop.production import People, image_key, own_paths, prepare, renumbered, start_weights
from taast_ray.loop.stages import stage


@dataclass
class Dataset:
    train: Path
    val: Path | None           # None (production without a validation set): no evaluation
    test: Path | None
    images: Path
    frequency_from: Path | None = None  # labels whose r/c/f groups APr/APc/APf use (production: L)


def synthetic_dataset(root: Path, d: DataConfig, *, seed: int, zipf: float, note: str, **shape) -> Dataset:
    """The synthetic long-tailed set under ``root``, made once (``stats.json`` is written last);
    ``shape``: make_synthetic_dataset's empty_fraction / label_shift (an experiment's variants)."""
    from taast_ray.data.synth import make_synthetic_dataset

    if not (root / "stats.json").exists():
        say(note)
        shutil.rmtree(root, ignore_errors=True)
        make_synthetic_dataset(root, images=d.synthetic_images, classes=d.synthetic_classes, seed=seed,
                               image_size=d.synthetic_image_size, zipf=zipf,
                               eval_min_instances=d.synthetic_eval_min_instances,
                               family=d.synthetic_family, **shape)
    ann = root / "annotations"
    return Dataset(ann / "train.json", ann / "val.json", ann / "test.json", root / "images")


def resolve_dataset(cfg: TaastConfig, layout: RunLayout) -> Dataset:
    """A simulation's splits: data.train/val/test, or a synthetic set made in the run."""
    d = cfg.data
    if d.train:
        return Dataset(Path(d.train), Path(d.val), Path(d.test) if d.test else None, Path(d.images))
    return synthetic_dataset(layout.synthetic, d, seed=cfg.selection.seed, zipf=d.synthetic_zipf,
                             note=f"making a synthetic long-tailed dataset: {d.synthetic_images} images "
                                  f"-> {layout.synthetic}")


@dataclass(frozen=True)
class Oracle:
    """Simulation: the training ground truth labels a cycle's selection at once."""
    truth: Path

    def annotate(self, cycle: CycleLayout, resume: bool) -> None:
        def annotate():
            selected = pq.read_table(cycle.selection).column("image_id").to_pylist()
            write_json(cycle.labels_new, oracle_labels(self.truth, selected))
        stage(cycle.dir, "annotate", resume, annotate)


@dataclass(frozen=True)
class Simulation:
    """data.train split into L0 and U; a warm-up on L0; a selected image keeps its training-file
    id, so its labels join L as they are. Labelled by the oracle, or by people when
    ``protocol.simulate`` is false."""
    data: Dataset
    labeller: Oracle | People

    @classmethod
    def open(cls, cfg: TaastConfig, layout: RunLayout, resume: bool) -> "Simulation":
        data = resolve_dataset(cfg, layout)
        stage(layout.data, SPLIT_STAGE, resume, lambda: split_labelled_pool(
            data.train, data.images, layout.data, fraction=cfg.protocol.seed_fraction, seed=cfg.selection.seed))
        return cls(data, Oracle(data.train) if cfg.protocol.simulate else People(layout))

    def warms_up(self, cfg: TaastConfig, labels_l0: dict) -> bool:
        return True

    @staticmethod
    def key(img: dict) -> str:
        return str(img["id"])

    def merge(self, base: dict, new: dict, cycle: CycleLayout) -> dict:
        return merge_labels(base, new)

    def pseudo(self, labels: dict, raw: dict) -> dict:
        return raw


@dataclass(frozen=True)
class OwnData:
    """A team's L and pool (loop/production.py): keyed by path under data.images; their own .pt
    with L's classes skips the warm-up; new and pseudo labels get ids after L's and file names
    to train on (object-store images fetched under ``cache``). Labelled by people."""
    data: Dataset
    labeller: People
    cache: Path

    @classmethod
    def open(cls, cfg: TaastConfig, layout: RunLayout, resume: bool) -> "OwnData":
        from taast_ray.evaluation.tail import format_own_class_table

        paths = own_paths(cfg, layout, resume)
        stage(layout.data, PREPARE_STAGE, resume, lambda: prepare(paths, layout))
        optional = {k: Path(paths[k]) if paths.get(k) else None for k in ("val", "test")}
        data = Dataset(Path(paths["labelled"]), optional["val"], optional["test"], Path(paths["images"]),
                       frequency_from=layout.labels_l0)
        say("classes of L (tag: the r/c/f group of APr/APc/APf, from L; L0 tag: < 10 images is rare):\n"
            + format_own_class_table(read_json(layout.labels_l0), read_json(data.val) if data.val else None))
        return cls(data, People(layout), layout.fetched)

    def warms_up(self, cfg: TaastConfig, labels_l0: dict) -> bool:
        if start_weights(cfg, len(labels_l0["categories"])):
            return True
        say(f"starting from {Path(cfg.model.weights)} (its classes are L's): no warm-up")
        return False

    key = staticmethod(image_key)

    def merge(self, base: dict, new: dict, cycle: CycleLayout) -> dict:
        sel = pq.read_table(cycle.selection)
        uris = dict(zip(sel.column("image_id").to_pylist(),
                        sel.column("uri").to_pylist() if "uri" in sel.column_names else [None] * sel.num_rows))
        return merge_labels(base, renumbered(base, new, uris, self.data.images, self.cache))

    def pseudo(self, labels: dict, raw: dict) -> dict:
        uris = {image_key(i): i["file_name"] for i in raw["images"]}
        return renumbered(labels, raw, uris, self.data.images, self.cache)


def open_source(cfg: TaastConfig, layout: RunLayout, resume: bool) -> Simulation | OwnData:
    """The run's data source, its splits made (resumable stages under RUN/data/)."""
    return (OwnData if cfg.production else Simulation).open(cfg, layout, resume)
