"""``taast run``: T active-learning cycles (SPEC.md §1 steps 1–6, §6), resumable stage by stage.

The run directory's layout and stage names are :mod:`taast_ray.loop.layout`'s. Every stage ends
with a marker; ``resume`` skips marked stages, and each stage is deterministic given the ones
before it, so a resumed run ends where an uninterrupted one would.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.config import TaastConfig, save_config
from taast_ray.data.split import merge_labels, oracle_labels, split_labelled_pool, subset_labels
from taast_ray.data.yolo import export_yolo
from taast_ray.console import say, warn
from taast_ray.errors import InputError
from taast_ray.evaluation.metrics import METRIC_KEYS
from taast_ray.io import read_json, write_json, write_parquet
from taast_ray.lock import holds_work
from taast_ray.loop.layout import SPLIT_STAGE, CycleLayout, RunLayout
from taast_ray.loop.stages import stage

log = logging.getLogger(__name__)
L0_METRIC_KEYS = ("APr@L0", "APc@L0", "APf@L0")  # groups counted on L0 (evaluation/tail.py)
ROW_METRIC_KEYS = (*METRIC_KEYS, *L0_METRIC_KEYS, "AP50f")  # what a cycle's evaluation puts in its row
TAIL_KEYS = ("tail_lift", "rare_images_selected", "rare_images_random", "candidate_rare_share",
             "pool_rare_image_share")


@dataclass
class Dataset:
    train: Path
    val: Path | None           # None (production without a validation set): no evaluation
    test: Path | None
    images: Path
    frequency_from: Path | None = None  # labels whose r/c/f groups APr/APc/APf use (production: L)


class AwaitingAnnotation(Exception):
    """Production mode: the run stops after a selection until `taast ingest` brings the labels."""


def resolve_dataset(cfg: TaastConfig, layout: RunLayout) -> Dataset:
    d = cfg.data
    if d.train:
        return Dataset(Path(d.train), Path(d.val), Path(d.test) if d.test else None, Path(d.images))
    from taast_ray.data.synth import make_synthetic_dataset

    root = layout.synthetic
    if not (root / "stats.json").exists():
        say(f"making a synthetic long-tailed dataset: {d.synthetic_images} images -> {root}")
        make_synthetic_dataset(root, images=d.synthetic_images, classes=d.synthetic_classes,
                               seed=cfg.selection.seed, image_size=d.synthetic_image_size,
                               zipf=d.synthetic_zipf, eval_min_instances=d.synthetic_eval_min_instances)
    ann = root / "annotations"
    return Dataset(ann / "train.json", ann / "val.json", ann / "test.json", root / "images")


def train_and_evaluate(cfg: TaastConfig, data: Dataset, labels: dict, pseudo: dict | None,
                       init_weights: str, epochs: int, cycle: CycleLayout, resume: bool) -> None:
    """L ∪ Q ∪ P in the YOLO layout, fine-tuned on Ray Train, evaluated on the fixed val split."""
    def assemble():
        train_set = combine_training_set(labels, pseudo)
        write_json(cycle.train_set, train_set)
        shutil.rmtree(cycle.yolo, ignore_errors=True)
        # Ultralytics needs a val split; without one the training set stands in (never reported)
        export_yolo({"train": cycle.train_set, "val": data.val or cycle.train_set}, data.images, cycle.yolo,
                    train_set["categories"])

    def train():
        from taast_ray.training.trainer import fine_tune

        t = cfg.train
        result = fine_tune(cycle.yolo / "dataset.yaml", init_weights, cycle.train,
                           epochs=epochs, imgsz=t.imgsz, batch=t.batch, workers=t.workers, lr0=t.lr0,
                           lrf=t.lrf, momentum=t.momentum, weight_decay=t.weight_decay, cos_lr=True,
                           seed=cfg.selection.seed, num_classes=len(labels["categories"]),
                           optimizer=t.optimizer, select_best_epoch=t.select_best_epoch,
                           use_gpu=cfg.ray.use_gpu, cpus_per_worker=t.cpus_per_worker)
        shutil.copyfile(result["checkpoint"], cycle.weights)
        val = result["metrics"].get("metrics/mAP50(B)")
        say(f"{cycle.dir.name}: trained {epochs} epochs on {len(read_json(cycle.train_set)['images'])} "
            f"images with {t.workers} Ray Train workers" + (f", val mAP50 {val:.3f}" if val is not None else ""))

    def evaluate():
        metrics = evaluate_weights(cfg, cycle.weights, data.val, data.images, cycle.val_predictions,
                                   RunLayout(cycle.dir.parent).labels_l0, data.frequency_from)
        write_json(cycle.metrics, metrics)
        say(f"{cycle.dir.name}: " + "  ".join(f"{k} {_num(metrics.get(k))}"
                                              for k in ROW_METRIC_KEYS))

    say(f"{cycle.dir.name}: fine-tuning on {len(labels['images'])} labelled"
        + (f" + {len(pseudo['images'])} pseudo-labelled" if pseudo else "") + " images")
    stage(cycle.dir, "dataset", resume, assemble)
    stage(cycle.dir, "train", resume, train)
    if data.val is not None:
        stage(cycle.dir, "evaluate", resume, evaluate)


def evaluate_weights(cfg: TaastConfig, weights: Path, gt: Path, images: Path, predictions: Path,
                     l0_labels: Path | None = None, frequency_from: Path | None = None) -> dict:
    """LVIS/COCO metrics; with L0's labels also the groups counted on L0 (``APr@L0`` ...); with
    ``frequency_from`` APr/APc/APf on that training set's groups (tail.training_frequency)."""
    from taast_ray.evaluation.metrics import evaluate_detections, write_predictions
    from taast_ray.evaluation.predict import predict_split
    from taast_ray.evaluation.tail import l0_frequency, training_frequency

    write_predictions(predictions, predict_split(weights, gt, images, imgsz=cfg.train.imgsz,
                                                 device=cfg.model.device))
    l0 = l0_frequency(read_json(l0_labels)) if l0_labels is not None and l0_labels.exists() else None
    groups = training_frequency(read_json(frequency_from)) if frequency_from is not None else None
    return evaluate_detections(gt, predictions, l0_frequency=l0, frequency=groups)


def combine_training_set(labels: dict, pseudo: dict | None) -> dict:
    """T_train = L_new ∪ P (eq. 13); an image in both keeps its manual labels (no image in Q ∩ P)."""
    if not pseudo or not pseudo.get("images"):
        return labels
    manual = {img["id"] for img in labels["images"]}
    keep = [img["id"] for img in pseudo["images"] if img["id"] not in manual]
    extra = subset_labels(pseudo, keep)
    extra["annotations"] = [{k: v for k, v in a.items() if k != "score"} for a in extra["annotations"]]
    return merge_labels(labels, extra)


def write_cycle_pool(pool: Path, labelled_ids: set[str], target: Path) -> None:
    table = pq.read_table(pool)
    keep = pc.invert(pc.is_in(table.column("image_id"), value_set=pa.array(sorted(labelled_ids))))
    write_parquet(target, table.filter(keep))


def select_stage(cfg: TaastConfig, cycle: CycleLayout, labels_path: Path, weights: Path,
                 resume: bool, embedding_cache: Path, truth: Path | None = None) -> None:
    """Detect the pool, say loudly if the model finds boxes on < 50 % of the object-bearing
    images (``truth``: the training ground truth, simulation), then select on those detections."""
    from taast_ray.pipeline.live import select_live

    # the detector scores the pool at the size it was trained at (validate_for_run)
    live = replace(cfg, model=replace(cfg.model, weights=str(weights), imgsz=cfg.train.imgsz))

    def select():
        check_coverage(live, cycle.dir, cycle.pool, labels_path, truth)
        summary = select_live(live, str(cycle.pool), labels_path, cycle.select, resume=True,
                              embedding_cache=embedding_cache, truth_path=truth)
        for line in summary.get("warnings", []):
            warn(f"{cycle.dir.name}: {line}")
    stage(cycle.dir, "select", resume, select)


def check_coverage(cfg: TaastConfig, cycle_dir: Path, pool: Path, labels_path: Path,
                   truth: Path | None) -> None:
    """The detector pass over the pool, before selecting; select_live reuses its detections
    (a killed try's files stay too: same weights, same boxes)."""
    import sys

    from taast_ray.data.labels import load_labels
    from taast_ray.evaluation.simulation import pool_coverage, pool_ids, pool_truth
    from taast_ray.evaluation.tail import degenerate_warning
    from taast_ray.pipeline.live import detect_pool
    from taast_ray.stages.sources import list_pool_table

    cycle = CycleLayout(cycle_dir)
    detections = cycle.select / "detections"
    detect_pool(cfg, list_pool_table(str(pool)), detections, load_labels(labels_path).num_classes)
    known = pool_truth(read_json(truth), pool_ids(pool)) if truth is not None else None
    coverage = pool_coverage(detections, known)
    warning = degenerate_warning(coverage, f"{cycle.dir.name}, model {cfg.model.weights}")
    write_json(cycle.coverage, {**coverage, "warning": warning})
    if warning:
        print(f"[taast] {warning}", file=sys.stderr, flush=True)
    else:
        say(f"{cycle.dir.name}: boxes on {coverage['with_boxes']} of {coverage['images']} "
            f"{coverage['over']} of the pool")


def tail_stage(cycle: CycleLayout, data: Dataset, l0_labels: Path, resume: bool) -> None:
    """Simulation: the L0-rare objects the selection caught against random's expectation, into
    ``tail.json`` (evaluation/tail.py)."""
    from taast_ray.evaluation.simulation import cycle_tail

    def measure():
        tail = cycle_tail(cycle.dir, data.train, l0_labels)
        # tail.json only: select/ is a published output set, and rewriting its summary.json
        # would break the manifest's digests (io.check_output_set)
        write_json(cycle.tail, tail)
        say(f"{cycle.dir.name}: {tail['rare_images_selected']} images with L0-rare objects selected, "
            f"random would take {tail['rare_images_random']:.1f}: tail lift {_num(tail['tail_lift'], 2)}")
    stage(cycle.dir, "tail", resume, measure)


def annotate_stage(cfg: TaastConfig, cycle: CycleLayout, data: Dataset, resume: bool) -> None:
    def annotate():
        selected = pq.read_table(cycle.selection).column("image_id").to_pylist()
        if cfg.protocol.simulate:
            write_json(cycle.labels_new, oracle_labels(data.train, selected))
        elif not cycle.labels_new.exists():
            raise AwaitingAnnotation(
                f"{len(selected)} images await annotation: send {cycle.label_studio_tasks} "
                f"to the annotators, then `taast ingest --labels NEW.json --run {cycle.dir.parent}` "
                f"and `taast run --resume`")
    stage(cycle.dir, "annotate", resume, annotate)


def run_cycles(cfg: TaastConfig, run: str | Path, *, resume: bool = False) -> list[dict]:
    cfg.validate_for_run()
    layout = RunLayout(Path(run))
    run = layout.root
    if not resume and holds_work(run):
        raise InputError(f"{run}: run directory is not empty (use --resume to continue it)")
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, layout.config)
    if cfg.production:
        from taast_ray.loop.production import run_production

        rows = run_production(cfg, layout, resume)
        write_json(layout.cycles_json, rows)
        return rows
    data = resolve_dataset(cfg, layout)
    stage(layout.data, SPLIT_STAGE, resume, lambda: split_labelled_pool(
        data.train, data.images, layout.data, fraction=cfg.protocol.seed_fraction, seed=cfg.selection.seed))
    labels_path = layout.labels_l0
    warmup = layout.warmup
    train_and_evaluate(cfg, data, read_json(labels_path), None, cfg.model.weights,
                       cfg.train.warmup_epochs, warmup, resume)
    rows = [cycle_row(warmup, read_json(labels_path))]
    weights = warmup.weights
    for t in range(1, cfg.protocol.cycles + 1):
        cycle = layout.cycle(t)
        labelled = {str(img["id"]) for img in read_json(labels_path)["images"]}
        stage(cycle.dir, "pool", resume, lambda: write_cycle_pool(layout.pool, labelled, cycle.pool))
        truth = data.train if cfg.protocol.simulate else None
        select_stage(cfg, cycle, labels_path, weights, resume, layout.embedding_cache, truth)
        if truth is not None:
            tail_stage(cycle, data, layout.labels_l0, resume)
        annotate_stage(cfg, cycle, data, resume)
        labels = merge_labels(read_json(labels_path), read_json(cycle.labels_new))
        write_json(cycle.labels, labels)
        pseudo = read_json(cycle.pseudo_labels) if cfg.protocol.pseudo_labels else None
        train_and_evaluate(cfg, data, labels, pseudo, str(weights), cfg.train.epochs, cycle, resume)
        rows.append(cycle_row(cycle, labels))
        labels_path, weights = cycle.labels, cycle.weights
    if data.test is not None:
        # the final model's score: a run resumed with more cycles scores its new final model
        stage(run, "test", resume, lambda: write_json(layout.test_metrics, evaluate_weights(
            cfg, weights, data.test, data.images, layout.test_predictions, layout.labels_l0)),
            of={"cycle": cfg.protocol.cycles})
    write_json(layout.cycles_json, rows)
    return rows


def cycle_row(cycle: CycleLayout, labels: dict) -> dict:
    metrics = read_json(cycle.metrics) if cycle.metrics.exists() else {}  # no val: no metrics
    train_set = read_json(cycle.train_set)
    manual = len(labels["annotations"])
    tail = read_json(cycle.tail) if cycle.tail.exists() else {}
    coverage = read_json(cycle.coverage) if cycle.coverage.exists() else {}
    return {"cycle": cycle.index, **{k: metrics.get(k) for k in ROW_METRIC_KEYS},
            "labelled_images": len(labels["images"]),
            "manual_annotations": manual,
            "pseudo_annotations": len(train_set["annotations"]) - manual,
            "pseudo_share": round(1 - manual / max(len(train_set["annotations"]), 1), 4),
            **{k: tail.get(k) for k in TAIL_KEYS}, "box_coverage": coverage.get("share")}


def _num(value, digits: int = 3) -> str:
    """A metric for a table: '—' where it is undefined (no class in the group, nothing to catch)."""
    return "—" if value is None else f"{value:.{digits}f}"


TABLE_COLUMNS = ("AP", "APr@L0", "APr", "APc", "APf", "mAP")


def format_table(rows: list[dict]) -> str:
    """Per cycle: AP, APr@L0 (rare = < 10 L0 images), APr/APc/APf (the file's own LVIS tags),
    mAP, the pseudo share of training boxes, and the tail lift of that cycle's selection."""
    header = (f"{'cycle':>5} {'images':>7} " + " ".join(f"{k:>6}" for k in TABLE_COLUMNS)
              + f" {'pseudo%':>8} {'lift':>5} {'rare sel/rand':>13}")
    lines = [header, "-" * len(header)]
    for r in rows:
        caught = r.get("rare_images_selected")
        sel = "" if caught is None else f"{caught}/{r['rare_images_random']:.1f}"
        lines.append(f"{r['cycle']:>5} {r['labelled_images']:>7} " + " ".join(
            f"{_num(r.get(k)):>6}" for k in TABLE_COLUMNS)
            + f" {100 * r['pseudo_share']:>7.1f}% {_num(r.get('tail_lift'), 2):>5} {sel:>13}")
    lines.append("APr@L0: classes with < 10 images in L0 (the paper's rare); APr/APc/APf: the label "
                 "file's LVIS tags (training-split counts); lift: L0-rare images selected / random's "
                 "expectation (B x pool share); — = undefined")
    return "\n".join(lines)
