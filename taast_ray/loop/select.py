"""A cycle's selection stages: the pool left to choose from, the detector's pass with its box
coverage and the selection on those detections, and (where the pool's truth is known) the tail
the selection caught. The detector is this cycle's model, passed as a value."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.config import TaastConfig
from taast_ray.console import say, warn
from taast_ray.io import read_json, write_json, write_parquet
from taast_ray.loop.layout import CycleLayout
from taast_ray.loop.rows import format_metric
from taast_ray.loop.stages import stage


def write_cycle_pool(pool: Path, labelled_ids: set[str], target: Path) -> None:
    table = pq.read_table(pool)
    keep = pc.invert(pc.is_in(table.column("image_id"), value_set=pa.array(sorted(labelled_ids))))
    write_parquet(target, table.filter(keep))


def select_stage(cfg: TaastConfig, cycle: CycleLayout, labels_path: Path, weights: Path, resume: bool,
                 embedding_cache: Path, truth: Path | None = None, labelled_images: Path | None = None) -> None:
    """Detect the pool with ``weights``, say loudly if the model finds boxes on < 50 % of the
    object-bearing images (``truth``: the training ground truth, simulation), then select on
    those detections."""
    from taast_ray.pipeline.live import select_live

    def select():
        check_coverage(cfg, cycle.dir, cycle.pool, labels_path, truth, weights)
        summary = select_live(cfg, str(cycle.pool), labels_path, cycle.select, weights=weights,
                              detections=cycle.detections, resume=True, embedding_cache=embedding_cache,
                              truth_path=truth, labelled_images=labelled_images)
        for line in summary.get("warnings", []):
            warn(f"{cycle.dir.name}: {line}")
    stage(cycle.dir, "select", resume, select)


def check_coverage(cfg: TaastConfig, cycle_dir: Path, pool: Path, labels_path: Path,
                   truth: Path | None, weights: str | Path | None = None) -> None:
    """The detector pass (``weights``, else model.weights) over the pool, before selecting;
    select_live reuses its detections (a killed try's files stay too: same weights, same boxes)."""
    from taast_ray.data.labels import load_labels
    from taast_ray.evaluation.simulation import pool_coverage, pool_ids, pool_truth
    from taast_ray.evaluation.tail import degenerate_warning
    from taast_ray.pipeline.live import detect_pool
    from taast_ray.stages.sources import list_pool_table

    cycle = CycleLayout(cycle_dir)
    weights = str(cfg.model.weights if weights is None else weights)
    detect_pool(cfg, list_pool_table(str(pool)), cycle.detections, load_labels(labels_path).num_classes,
                weights=weights)
    known = pool_truth(read_json(truth), pool_ids(pool)) if truth is not None else None
    coverage = pool_coverage(cycle.detections, known)
    warning = degenerate_warning(coverage, f"{cycle.dir.name}, model {weights}")
    write_json(cycle.coverage, {**coverage, "warning": warning})
    if warning:
        print(f"[taast] {warning}", file=sys.stderr, flush=True)
    else:
        say(f"{cycle.dir.name}: boxes on {coverage['with_boxes']} of {coverage['images']} "
            f"{coverage['over']} of the pool")


def tail_stage(cycle: CycleLayout, truth: Path, l0_labels: Path, resume: bool) -> None:
    """Simulation: the L0-rare objects the selection caught against random's expectation, into
    ``tail.json`` (evaluation/tail.py); ``truth``: the training ground truth."""
    from taast_ray.evaluation.simulation import cycle_tail

    def measure():
        tail = cycle_tail(cycle.pool, cycle.select, cycle.detections, truth, l0_labels)
        # tail.json only: select/ is a published output set, and rewriting its summary.json
        # would break the manifest's digests (io.check_output_set)
        write_json(cycle.tail, tail)
        rare = tail["pseudo_labels"]["r"]
        say(f"{cycle.dir.name}: {tail['rare_images_selected']} images with L0-rare objects selected, "
            f"random would take {tail['rare_images_random']:.1f}: tail lift {format_metric(tail['tail_lift'], 2)}; "
            f"pseudo labels of L0-rare classes: precision {format_metric(rare['precision'], 2)}, "
            f"recall {format_metric(rare['recall'], 2)}")
    stage(cycle.dir, "tail", resume, measure)
