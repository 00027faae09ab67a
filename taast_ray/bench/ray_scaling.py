"""The Ray side: the detector pass against a plain in-process loop, and the whole live pass
(``taast select --pool``), for each actor count (SPEC §8, third bullet).

Both detector runs execute ``DetectStage.__call__`` on batches of the same size; Ray adds the
listing, the object store (compressed bytes, not pixels), the actor pool and the parquet write.
Every timing includes loading the model(s), as a user's run does.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Callable

from taast_ray.bench.measure import timer
from taast_ray.config import TaastConfig
from taast_ray.stages.detect import DetectStage


def plain_loop(paths: list[Path], cfg: TaastConfig, classes: int) -> dict:
    """One process, no Ray: read a batch's bytes, then the detector stage on it."""
    times = {"load_model": 0.0, "read": 0.0, "decode_detect": 0.0}
    start = time.perf_counter()
    stage = DetectStage(cfg.model.weights, imgsz=cfg.model.input_size, conf=cfg.selection.det_conf,
                        num_classes=classes, device=cfg.model.device).ensure_setup()
    times["load_model"] = time.perf_counter() - start
    size = cfg.ray.batch_size
    for lo in range(0, len(paths), size):
        with timer() as read:
            data = [p.read_bytes() for p in paths[lo:lo + size]]
        with timer() as work:
            stage({"image_id": [p.name for p in paths[lo:lo + size]], "bytes": data})
        times["read"] += read()
        times["decode_detect"] += work()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "images_per_s": round(len(paths) / seconds, 3),
            "stages_s": {k: round(v, 3) for k, v in times.items()}}


def actor_capacity(use_gpu: str, stage_cls=DetectStage) -> int:
    """How many actors of ``stage_cls`` the cluster can hold at once (each asks for what the
    stage declares, ray_env.stage_resources)."""
    import ray

    from taast_ray.ray_env import stage_resources

    need, have = stage_resources(stage_cls, use_gpu), ray.cluster_resources()
    fits = [math.floor(have.get("CPU", 0) / need.cpus + 1e-9)] if need.cpus else []
    if need.gpus:
        fits.append(math.floor(have.get("GPU", 0) / need.gpus + 1e-9))
    return min(fits) if fits else 0


def ray_passes(pool: Path, labels: Path, config_for: Callable[[int], TaastConfig], actor_counts: list[int],
               classes: int, work: Path, *, end_to_end: bool) -> list[dict]:
    """Per actor count: the Ray detector pass and, with ``end_to_end``, the whole live selection."""
    from taast_ray.pipeline.live import detect_pool, select_live
    from taast_ray.stages.sources import list_pool_table

    listing = list_pool_table(pool)
    capacity = actor_capacity(config_for(1).ray.use_gpu)
    rows = []
    for actors in actor_counts:
        if actors > capacity:
            rows.append({"actors": actors, "skipped": f"the cluster holds {capacity} model actors"})
            continue
        cfg = config_for(actors)
        with timer() as detect:
            detect_pool(cfg, listing, work / f"detect-{actors}", classes)
        row = {"actors": actors, "detect_pass_seconds": round(detect(), 3),
               "detect_pass_images_per_s": round(listing.num_rows / detect(), 3)}
        if end_to_end:
            with timer() as whole:
                summary = select_live(cfg, str(pool), labels, work / f"select-{actors}")
            row.update({"end_to_end_seconds": round(whole(), 3),
                        "end_to_end_images_per_s": round(listing.num_rows / whole(), 3),
                        "end_to_end_stages_s": {**summary.get("live_timings_s", {}),
                                                          **summary.get("timings_s", {})}, "selected": summary["selected"]})
        shutil.rmtree(work / f"detect-{actors}", ignore_errors=True)
        rows.append(row)
    return rows
