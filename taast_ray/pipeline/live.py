"""The live selection pass (SPEC.md §5): pool → detector actors → aggregator → CLIP actors → pick.

The pool's listing (names only) is cut into shards in image_id order; each shard streams through
Ray Data (read bytes → decode + YOLOv8 on an autoscaling actor pool) into its own parquet folder,
renamed into place when whole, with a completion marker. ``resume`` skips finished shards.
Embeddings are cached by (image_id, model, weights) across runs: the image tower is frozen.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.config import RayConfig, TaastConfig, save_config
from taast_ray.data.labels import load_labels
from taast_ray.io import staged_directory
from taast_ray.pipeline.aggregator import CentralAggregator
from taast_ray.pipeline.progress import say, stage
from taast_ray.pipeline.ray_env import actor_resources, ensure_ray, head_pinning, remote_call
from taast_ray.selection.run import check_budget
from taast_ray.stages.detect import DetectStage
from taast_ray.stages.embed import EmbedStage
from taast_ray.stages.sources import list_pool_table, listing_dataset, read_pool_bytes
from taast_ray.stages.tensor_decode import decode_to_pixels

log = logging.getLogger(__name__)
READ_CPUS = 0  # reading bytes is I/O: with a CPU slot of its own it could wait forever behind the
#                model actors that hold every slot (2 actors on 2 CPUs); ray.read_tasks bounds how many run

# The parquet write is small I/O too: with the default 1 CPU it waited behind the actors holding
# every CPU and ran after the last batch, adding its whole time to the pass. One task at a time:
# unbounded 0-CPU writes start a worker process per block, each importing Ray and pyarrow.
WRITE_ARGS = {"ray_remote_args": {"num_cpus": 0}, "concurrency": 1}


def through_model_pool(ds, stage_cls, constructor_kwargs: dict, actors: tuple[int, int], ray_cfg: RayConfig):
    """Read bytes (tasks) → [decode (CPU tasks)] → ``stage_cls`` on an autoscaling actor pool.

    Ray Data's actor pools default to max_restarts=-1 and max_task_retries=-1: a lost actor is
    restarted and its in-flight batches retried (actor_pool_map_operator.py). Decode tasks are
    retried by Ray's task retries; Ray Data runs as many as the cluster's free CPUs allow.
    """
    import ray

    resources = actor_resources(ray_cfg.use_gpu)
    reads = ray.data.TaskPoolStrategy(size=ray_cfg.read_tasks or actors[1])
    ds = read_pool_bytes(ds, batch_size=ray_cfg.batch_size, num_cpus=READ_CPUS, compute=reads)
    if ray_cfg.decode == "tasks":
        ds = ds.map_batches(decode_to_pixels, batch_format="pyarrow", batch_size=ray_cfg.batch_size,
                            num_cpus=ray_cfg.decode_cpus)
    return ds.map_batches(
        stage_cls, batch_format="pyarrow", batch_size=ray_cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=actors[0], max_size=actors[1]),
        fn_constructor_kwargs=constructor_kwargs,
        num_cpus=resources.num_cpus, num_gpus=resources.num_gpus)


def detect_shard(cfg: TaastConfig, listing: pa.Table, target: Path, num_classes: int,
                 stage_cls=DetectStage) -> None:
    """One shard through read → decode + detect, written to a temporary folder then moved into place."""
    ds = through_model_pool(
        listing_dataset(listing), stage_cls,
        {"weights": cfg.model.weights, "imgsz": cfg.model.imgsz, "conf": cfg.selection.det_conf,
         "num_classes": num_classes, "device": cfg.model.device},
        (cfg.ray.detector_actors_min, cfg.ray.detector_actors_max), cfg.ray)
    with staged_directory(target) as tmp:
        ds.write_parquet(str(tmp), **WRITE_ARGS)


def embedding_cache_dir(root: Path, cfg: TaastConfig) -> Path:
    key = f"{cfg.model.embedder}|{cfg.model.embedder_weights}"
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:60]
    return root / f"{readable}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def cached_ids(cache: Path) -> pa.Array:
    files = sorted(cache.glob("*.parquet"))
    if not files:
        return pa.array([], pa.string())
    return pa.concat_arrays([pq.read_table(f, columns=["image_id"]).column("image_id").combine_chunks()
                             for f in files])


def embed_missing(cfg: TaastConfig, wanted: pa.Table, cache: Path) -> int:
    """Embed the wanted images not in the cache yet; new rows land in the cache atomically."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = wanted.filter(pc.invert(pc.is_in(wanted.column("image_id"), value_set=cached_ids(cache))))
    if missing.num_rows == 0:
        return 0
    ds = through_model_pool(
        listing_dataset(missing), EmbedStage,
        {"model_name": cfg.model.embedder, "weights": cfg.model.embedder_weights, "device": cfg.model.device},
        (cfg.ray.embedder_actors_min, cfg.ray.embedder_actors_max), cfg.ray)
    ds = ds.map_batches(_embedded_rows, batch_format="pyarrow", num_cpus=READ_CPUS)
    tmp = cache / f".new-{uuid.uuid4().hex[:8]}"
    ds.write_parquet(str(tmp), **WRITE_ARGS)
    for part in sorted(tmp.glob("*.parquet")):
        os.replace(part, cache / f"{uuid.uuid4().hex}.parquet")
    shutil.rmtree(tmp, ignore_errors=True)
    return missing.num_rows


def _embedded_rows(batch: pa.Table) -> pa.Table:
    """Only rows that embedded go to the cache; a failed one is left for the next run to retry."""
    return batch.filter(pc.is_null(batch.column("error"))).select(["image_id", "embedding"])


def select_live(cfg: TaastConfig, pool: str, labels_path: str | Path, out: str | Path, *,
                resume: bool = False, shard_size: int = 5000, limit: int | None = None,
                embedding_cache: str | Path | None = None, detect_stage_cls=DetectStage) -> dict:
    """``taast select --pool``: every input is checked before the first actor starts."""
    import ray

    out = Path(out)
    timings: dict[str, float] = {}
    labels = load_labels(labels_path)
    listing = list_pool_table(pool, limit=limit)
    check_budget(cfg.selection.budget, listing.num_rows, str(pool))
    if out.exists() and not resume:
        shutil.rmtree(out / "detections", ignore_errors=True)
        shutil.rmtree(out / "_markers", ignore_errors=True)
    ensure_ray(cfg.ray.address)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")

    start = time.perf_counter()
    shards = range(0, listing.num_rows, shard_size)
    for n, first in enumerate(shards):
        name = f"shard-{n:05d}"
        def detect(n=n, first=first, name=name):
            say(f"detect {name}: images {first}-{min(first + shard_size, listing.num_rows) - 1} "
                f"of {listing.num_rows} ({n + 1}/{len(shards)})")
            detect_shard(cfg, listing.slice(first, shard_size), out / "detections" / name,
                         labels.num_classes, detect_stage_cls)
        stage(out, name, resume, detect)
    timings["detect"] = round(time.perf_counter() - start, 3)

    aggregator = ray.remote(CentralAggregator).options(
        num_cpus=0, **head_pinning(cfg.ray.aggregator_on_head)).remote(cfg.to_dict(), str(labels_path))
    counts = remote_call(aggregator.load, str(out / "detections"))
    say(f"scored {counts['scored']} images, {counts['errors']} unreadable, "
        f"{counts['pseudo_labelled']} pseudo-labelled")
    wanted = remote_call(aggregator.to_embed)
    cache = embedding_cache_dir(Path(embedding_cache) if embedding_cache else out / "embedding_cache", cfg)
    start = time.perf_counter()
    if wanted.num_rows:
        new = embed_missing(cfg, wanted, cache)
        say(f"embedded {new} images ({wanted.num_rows - new} from the cache)")
    timings["embed"] = round(time.perf_counter() - start, 3)
    summary = remote_call(aggregator.select, str(cache) if wanted.num_rows else None, str(out),
                          {"pool": str(pool), "labels": str(labels_path), "live_timings_s": timings,
                           "converted": counts["converted"], "embedded": int(wanted.num_rows)})
    ray.kill(aggregator)
    return summary
