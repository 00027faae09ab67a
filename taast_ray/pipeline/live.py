"""The live selection pass (SPEC.md §5): pool → detector actors → aggregator → CLIP actors → pick.

The pool's listing (names only) streams through one Ray Data execution (read bytes → decode +
YOLOv8 on an autoscaling actor pool) that appends parquet files of ``rows_per_file`` rows to
``OUT/detections``; ``resume`` runs only the images no file holds yet, so a killed run or a lost
node costs at most the files being written. Embeddings are cached by (image_id, model, weights)
across runs the same way: the image tower is frozen. With ``model.embedder: detector`` the
detector actors write each image's pooled neck features beside its boxes and the candidates'
rows are read from there: no embedder actors, no second decode.
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.config import RayConfig, TaastConfig
from taast_ray.data.labels import load_labels
from taast_ray.errors import InputError
from taast_ray.io import bare_paths, child, is_uri, list_parquet, remove_tree, resolve
from taast_ray.embedder_names import DETECTOR, cache_key
from taast_ray.pipeline.aggregator import CentralAggregator
from taast_ray.pipeline.exemplars import build_prototypes
from taast_ray.selection import registry
from taast_ray.console import Progress, say
from taast_ray.models.checks import check_detector, check_embedder
from taast_ray.ray_env import aggregator_placement, ensure_ray, remote_call, stage_resources
from taast_ray.pipeline.precomputed import check_budget
from taast_ray.stages.detect import DetectStage, embeddings_from_detections
from taast_ray.stages.embed import EmbedStage
from taast_ray.stages.parquet_sink import write_rows_per_file
from taast_ray.stages.sources import (dataset_listing, list_pool_table, listing_dataset, read_dataset_pool,
                                     read_pool_bytes)
from taast_ray.stages.stage import actor_class
from taast_ray.stages.tensor_decode import decode_to_pixels

log = logging.getLogger(__name__)
READ_CPUS = 0  # reading bytes is I/O: with a CPU slot of its own it could wait forever behind the
#                model actors that hold every slot (2 actors on 2 CPUs); ray.read_tasks bounds how many run



def through_model_pool(ds, stage_cls, constructor_kwargs: dict, actors: tuple[int, int], ray_cfg: RayConfig,
                       *, read=read_pool_bytes):
    """Read bytes (tasks) → [decode (CPU tasks)] → ``stage_cls`` on an autoscaling actor pool.
    ``read``: the read stage (a pool Dataset's rows already hold bytes or paths of their own).

    Each actor asks for what the stage declares (``stage_cls.resources``, GPUs when the cluster
    has them), builds the stage from ``constructor_kwargs`` and sets it up (loads its model) once;
    the pool is named after the stage (``MapBatches(detect)``) on the dashboard.

    Ray Data's actor pools default to max_restarts=-1 and max_task_retries=-1: a lost actor is
    restarted and its in-flight batches retried (actor_pool_map_operator.py). Decode tasks are
    retried by Ray's task retries; Ray Data runs as many as the cluster's free CPUs allow.
    """
    import ray

    resources = stage_resources(stage_cls, ray_cfg.use_gpu)
    reads = ray.data.TaskPoolStrategy(size=ray_cfg.read_tasks or actors[1])
    ds = read(ds, batch_size=ray_cfg.batch_size, num_cpus=READ_CPUS, compute=reads)
    if ray_cfg.decode == "tasks":
        ds = ds.map_batches(decode_to_pixels, batch_format="pyarrow", batch_size=ray_cfg.batch_size,
                            num_cpus=ray_cfg.decode_cpus)
    return ds.map_batches(
        actor_class(stage_cls), batch_format="pyarrow", batch_size=ray_cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=actors[0], max_size=actors[1]),
        fn_constructor_kwargs=constructor_kwargs,
        num_cpus=resources.cpus, num_gpus=resources.gpus)


def written_ids(folder) -> pa.Array:
    """image_ids in the parquet files already under ``folder`` (the unit of resume).

    A file a killed write left half-written (local disks and NFS; an object store never shows
    one) has no footer and cannot be read: it is deleted, and its images run again. So is a file
    holding an image_id an earlier file already holds (two runs that once wrote into one folder,
    before runs were locked): resuming then repairs the folder instead of failing on the same
    "duplicate image_id" every time.
    """
    ids, seen = [], None
    fs, paths = bare_paths(list_parquet(folder))
    fs = fs or resolve(folder)[0]
    for path in paths:
        try:
            column = pq.read_table(path, columns=["image_id"], filesystem=fs).column(0).combine_chunks()
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning("%s: unreadable (%s), deleted; its images run again", path, exc)
            fs.delete_file(path)
            continue
        if seen is not None and (pc.any(pc.is_in(column, value_set=seen)).as_py()
                                 or len(pc.unique(column)) < len(column)):
            log.warning("%s: holds images another detections file holds, deleted; they run again", path)
            fs.delete_file(path)
            continue
        ids.append(column)
        seen = pa.concat_arrays(ids)
    return pa.concat_arrays(ids) if ids else pa.array([], pa.string())


def not_written(listing: pa.Table, folder, written: pa.Array | None = None) -> pa.Table:
    """The rows of ``listing`` whose image_id no file under ``folder`` holds yet (``written``: those
    ids, where the caller has already read them)."""
    written = written_ids(folder) if written is None else written
    return listing.filter(pc.invert(pc.is_in(listing.column("image_id"), value_set=written)))


def write_blocks(ds, folder, rows_per_file: int, progress=None) -> None:
    """Append the dataset's rows to ``folder`` (a path or URI) as parquet files of exactly
    ``rows_per_file`` rows, the pass's last one smaller (stages/parquet_sink.py); each file is
    named by this pass's id, so earlier files stay. ``progress``: rate and time left on stderr."""
    write_rows_per_file(ds, folder, rows_per_file, progress=progress)


def detect_pool(cfg: TaastConfig, listing: pa.Table, folder, num_classes: int, *,
                weights: str | Path | None = None, rows_per_file: int = 1000, stage_cls=DetectStage,
                exemplars: dict | None = None, source=None) -> int:
    """Every image of ``listing`` not yet under ``folder`` through read → decode + detect, with
    ``weights`` (a run's cycle passes its own model), else model.weights. ``exemplars``: L's
    class prototypes (``Prototypes.to_dict``): each row also gets its exemplar posteriors.
    ``source``: the pool as a Ray Dataset (``listing`` is then its image_ids), read from there.

    One Ray Data execution, so one actor pool whose start-up (~13 s on a CPU, process start and
    importing torch) is paid once per pass, not per slice of the pool. Returns how many ran.
    """
    written = written_ids(folder)  # read once: it also repairs the folder (deletes broken files)
    todo = not_written(listing, folder, written)
    before = listing.num_rows - todo.num_rows
    say(f"detect: {listing.num_rows} images" + (f", {before} detected before, {todo.num_rows} to go"
                                               if before else ""))
    if todo.num_rows:
        ds = through_model_pool(
            listing_dataset(todo) if source is None else source, stage_cls,
            {"weights": str(cfg.model.weights if weights is None else weights),
             "imgsz": cfg.model.input_size, "conf": cfg.selection.det_conf,
             "num_classes": num_classes, "device": cfg.model.device,
             **({"embed": True} if cfg.model.embedder == DETECTOR else {}),
             **({"exemplars": exemplars} if exemplars is not None else {})},
            (cfg.ray.detector_actors_min, cfg.ray.detector_actors_max), cfg.ray,
            **({} if source is None else {"read": lambda d, **kw: read_dataset_pool(d, written, **kw)}))
        write_blocks(ds, folder, rows_per_file, Progress("detect", todo.num_rows))
    return todo.num_rows


def embedding_cache_dir(root, cfg: TaastConfig):
    key = cache_key(cfg.model.embedder, cfg.model.embedder_weights, cfg.model.embedder_precision)
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:60]
    return child(root, f"{readable}-{hashlib.sha1(key.encode()).hexdigest()[:10]}")


def embed_missing(cfg: TaastConfig, wanted: pa.Table, cache, rows_per_file: int = 1000) -> int:
    """Embed the wanted images not in the cache yet; the new rows are appended to the cache."""
    missing = not_written(wanted, cache)
    if missing.num_rows == 0:
        return 0
    ds = through_model_pool(
        listing_dataset(missing), EmbedStage,
        {"model_name": cfg.model.embedder, "weights": cfg.model.embedder_weights, "device": cfg.model.device,
         "precision": cfg.model.embedder_precision},
        (cfg.ray.embedder_actors_min, cfg.ray.embedder_actors_max), cfg.ray)
    write_blocks(ds.map_batches(_embedded_rows, batch_format="pyarrow", num_cpus=READ_CPUS), cache, rows_per_file,
                 Progress("embed", missing.num_rows))
    return missing.num_rows


def _embedded_rows(batch: pa.Table) -> pa.Table:
    """Only rows that embedded go to the cache; a failed one is left for the next run to retry."""
    return batch.filter(pc.is_null(batch.column("error"))).select(["image_id", "embedding"])


def select_live(cfg: TaastConfig, pool: str, labels_path: str | Path, out: str | Path, *,
                weights: str | Path | None = None, detections: str | Path | None = None,
                resume: bool = False, rows_per_file: int = 1000, limit: int | None = None,
                embedding_cache: str | Path | None = None, detect_stage_cls=DetectStage,
                truth_path: str | Path | None = None, labelled_images: str | Path | None = None) -> dict:
    """``taast select --pool``: every input is checked before the first actor starts.

    ``out`` is a local folder or an object-store URI (``s3://bucket/run``); detections and
    embeddings are written there by the workers, so every node must reach it. ``resume`` keeps the
    detections files already written and runs only the images they lack. ``weights``: the
    detector, else model.weights (a run's cycle passes its own model; the summary's configuration
    records the one that ran); ``detections``: where its pass goes, else ``OUT/detections``.
    ``labelled_images``: the folder L's relative file_names are under (an exemplar-rarity
    strategy reads L's images once for its prototypes); default the labels file's folder.
    ``pool`` may be a ``ray.data.Dataset`` with a column of image bytes (``bytes``, beside
    ``image_id``) or of paths / URIs (``path`` or ``uri``; ``image_id`` optional, else the path):
    the pass reads it where it is, composed with whatever pipeline made it.
    """
    import ray

    # every local path absolute: the actors and Ray Data's tasks run in the workers' folders, which
    # are not this process's when it changed folder or joined a running cluster
    absolute = lambda p: p if p is None or is_uri(p) else Path(p).resolve()  # noqa: E731
    out, labels_path, detections = absolute(out), absolute(labels_path), absolute(detections)
    embedding_cache, truth_path, labelled_images = map(absolute, (embedding_cache, truth_path, labelled_images))
    weights = str(cfg.model.weights if weights is None else weights)
    if not is_uri(weights) and Path(weights).is_file():  # a local .pt or YAML, not a name to download
        weights = str(Path(weights).resolve())
    detections = child(out, "detections") if detections is None else detections
    timings: dict[str, float] = {}
    labels = load_labels(labels_path)
    if truth_path is not None:
        load_labels(truth_path)  # a COCO file, checked before any work
    source = pool if isinstance(pool, ray.data.Dataset) else None
    if source is not None:
        if limit is not None:
            source = source.limit(limit)
        listing, pool = dataset_listing(source), "<ray.data.Dataset>"
    else:
        listing = list_pool_table(pool, limit=limit)
    check_budget(cfg.selection.budget, listing.num_rows, str(pool))
    check_detector(weights, labels.num_classes)  # on the driver, before Ray and any file
    check_embedder(cfg.model.embedder, cfg.model.embedder_weights)
    ensure_ray(cfg.ray.address, worker_logs=cfg.ray.worker_logs)
    if not resume:
        remove_tree(detections)
    if not is_uri(out):
        out.mkdir(parents=True, exist_ok=True)
    # config.yaml is published with the output set (outputs/files.py), not before the pass

    exemplars = None
    if registry.strategy(cfg.selection.strategy).needs_exemplars:  # a pass over L, on the driver
        protos, exemplars = build_prototypes(
            weights, labels, labelled_images if labelled_images is not None else Path(labels_path).parent,
            imgsz=cfg.model.input_size, device=cfg.model.device, temperature=cfg.selection.exemplar_temperature)
        timings["exemplars"] = exemplars["seconds"]
    start = time.perf_counter()
    detect_pool(cfg, listing, detections, labels.num_classes, weights=weights, rows_per_file=rows_per_file,
                stage_cls=detect_stage_cls, exemplars=protos.to_dict() if exemplars else None, source=source)
    timings["detect"] = round(time.perf_counter() - start, 3)

    config = cfg.to_dict()
    config["model"]["weights"] = weights  # what the summary and config.yaml record: the detector that ran
    aggregator = ray.remote(CentralAggregator).options(
        num_cpus=0, **aggregator_placement(cfg.ray)).remote(config, str(labels_path))
    counts = remote_call(aggregator.load, str(detections))
    reasons = ", ".join(f"{k.removeprefix('dropped_')} {n}" for k, n in counts["errors_by_reason"].items())
    say(f"scored {counts['scored']} images, {counts['errors']} unreadable"
        + (f" ({reasons})" if reasons else "") + f", {counts['pseudo_labelled']} pseudo-labelled")
    if counts["scored"] < cfg.selection.budget:  # nothing to select from: say why, in files too
        reason = (f"{pool}: none of the {counts['pool_size']} images could be read" if not counts["scored"]
                  else f"{pool}: budget {cfg.selection.budget} is larger than the {counts['scored']} "
                       f"readable images ({counts['errors']} unreadable)")
        remote_call(aggregator.publish_failed, str(out), reason,
                    {"pool": str(pool), "labels": str(labels_path), "live_timings_s": timings})
        ray.kill(aggregator)
        raise InputError(f"{reason}; reasons in {child(out, 'errors.parquet')}")
    wanted = remote_call(aggregator.to_embed)
    cache = embedding_cache_dir(embedding_cache or child(out, "embedding_cache"), cfg)
    start = time.perf_counter()
    if wanted.num_rows and cfg.model.embedder == DETECTOR:  # this pass's own features, never cached
        cache = child(out, "detector_embeddings")
        say(f"read the detector's features of {embeddings_from_detections(detections, wanted, cache)} images")
    elif wanted.num_rows:
        new = embed_missing(cfg, wanted, cache, rows_per_file)
        say(f"embedded {new} images ({wanted.num_rows - new} from the cache)")
    timings["embed"] = round(time.perf_counter() - start, 3)
    summary = remote_call(aggregator.select, str(cache) if wanted.num_rows else None, str(out),
                          {"pool": str(pool), "labels": str(labels_path), "live_timings_s": timings,
                           "converted": counts["converted"], "embedded": int(wanted.num_rows),
                           **({"exemplars": exemplars} if exemplars else {})},
                          str(truth_path) if truth_path else None)
    ray.kill(aggregator)
    return summary
