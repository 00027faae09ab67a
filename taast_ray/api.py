"""The Python API: ``taast_ray.select`` and ``taast_ray.run``, the command line's two main commands
as functions, with the same options and the same checks.

    import ray, taast_ray
    frames = ray.data.read_parquet("s3://fleet/frames/")            # image_id, bytes (or path / uri)
    sel = taast_ray.select(frames, labels="labelled.json", out="sel/", budget=256,
                           weights="my_detector.pt")
    sel.image_ids, sel.selection, sel.summary["pseudo_labelled"]

Options: a configuration (a YAML path, a nested dict, or a :class:`~taast_ray.config.TaastConfig`),
then ``settings`` (``{"selection.tau": 0.7}`` or ``["selection.tau=0.7"]``, as ``--set``), then
the keyword options the command line has flags for (``budget``, ``strategy``, ``seed``, ``tau``,
``candidate_fraction``, ``count_mode``, ``kmeans_backend``, ``weights``, ``imgsz``, ``embedder``,
``embedder_weights``). A bad value raises :class:`~taast_ray.errors.ConfigError` (one line naming
the field) before any work starts; bad input files :class:`~taast_ray.errors.InputError`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from taast_ray.config import OPTION_FIELDS, TaastConfig, load_config
from taast_ray.errors import ConfigError


def configure(config=None, settings=None, base: dict | None = None, **options) -> TaastConfig:
    """The validated configuration: ``base`` < ``config`` < ``settings`` < ``options``."""
    unknown = sorted(set(options) - set(OPTION_FIELDS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not an option (options: {', '.join(OPTION_FIELDS)}; any field "
                          f"through settings={{'section.field': value}})")
    if isinstance(settings, dict):
        settings = [f"{k}={_text(v)}" for k, v in settings.items()]
    overrides = list(settings or []) + [f"{OPTION_FIELDS[k]}={_text(v)}" for k, v in options.items()
                                        if v is not None]
    if isinstance(config, TaastConfig):
        base, config = config.to_dict(), None
    elif isinstance(config, dict):
        base, config = {**(base or {}), **config}, None
    return load_config(config, overrides, base=base)


def _text(value) -> str:
    """A value as ``--set`` reads it (YAML): lists and mappings in flow style."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip() \
        if isinstance(value, (list, dict, bool)) or value is None else str(value)


@dataclass
class Selection:
    """What one selection pass published: its folder, summary, and the tables, read on demand."""
    out: str
    summary: dict

    def path(self, name: str) -> str:
        return f"{self.out.rstrip('/')}/{name}"

    @property
    def selection(self):
        """selection.parquet: the B images (image_id, rank, score, cluster, fill, uri), a pyarrow Table."""
        return self._table("selection.parquet")

    @property
    def scores(self):
        """scores.parquet: every scored image's E(x), c(x), weight, φ, P, candidate, cluster, selected."""
        return self._table("scores.parquet")

    @property
    def image_ids(self) -> list[str]:
        return self.selection.column("image_id").to_pylist()

    @property
    def pseudo_labels(self) -> dict:
        """P as COCO (pseudo_labels.json)."""
        from taast_ray.io import read_json

        return read_json(self.path("pseudo_labels.json"))

    def _table(self, name: str):
        import pyarrow.parquet as pq

        from taast_ray.io import resolve

        fs, inner = resolve(self.path(name))
        return pq.read_table(inner, filesystem=fs)


def select(pool=None, *, labels, out, detections=None, embeddings=None, config=None, settings=None,
           resume: bool = False, limit: int | None = None, labelled_images=None, ground_truth=None,
           embedding_cache=None, rows_per_file: int = 1000, on_stale_lock=None, out_flag: str = "out",
           **options) -> Selection:
    """``taast select``: from a live ``pool`` (a folder, a parquet manifest, an ``s3://`` /
    ``gs://`` prefix, or a ``ray.data.Dataset`` with ``bytes`` and ``image_id`` columns, or a
    ``path`` / ``uri`` column) on Ray, or from precomputed ``detections`` (and ``embeddings``)."""
    from taast_ray.io import is_uri
    from taast_ray.lock import run_lock

    cfg = configure(config, settings, **options)
    if (pool is None) == (detections is None):
        raise ConfigError("select: give a pool or detections, not both")
    out = str(out)
    _check_out(out, out_flag, uris=pool is not None,
               why="only a live pool (`taast select --pool`) writes to object stores")
    target = out if is_uri(out) else Path(out)
    with run_lock(target, on_stale=on_stale_lock):
        if pool is not None:
            from taast_ray.pipeline.live import select_live

            summary = select_live(cfg, pool, labels, target, resume=resume, limit=limit,
                                  embedding_cache=embedding_cache, rows_per_file=rows_per_file,
                                  truth_path=ground_truth, labelled_images=labelled_images)
        else:
            from taast_ray.pipeline.precomputed import select_from_detections

            summary = select_from_detections(cfg, detections, labels, target, embeddings,
                                             truth_path=ground_truth)
    return Selection(out, summary)


def _check_out(out: str, flag: str, *, uris: bool, why: str) -> None:
    """``out`` before any work: a URI only where ``uris`` (else ``why``), never a file or under one.
    ``flag``: how the message names it (``out`` here, ``--out`` from the command line)."""
    from taast_ray.io import check_out_dir, is_uri

    if is_uri(out) and not uris:
        raise ConfigError(f"{flag}: {out} is a URI; {why}")
    check_out_dir(out, flag)


@dataclass
class RunResult:
    """A `taast run`'s outcome: its folder, the cycle rows (metrics per cycle), and, where a
    production run stopped for its annotators, what to do next."""
    out: Path
    rows: list[dict] = field(default_factory=list)
    awaiting_annotation: str | None = None

    @property
    def table(self) -> str:
        from taast_ray.loop.rows import format_table

        return format_table(self.rows)


def run(*, out, config=None, settings=None, resume: bool = False, on_stale_lock=None, out_flag: str = "out",
        **options) -> RunResult:
    """``taast run``: cycles of select → annotate (the oracle, or people: the run stops, and
    ``awaiting_annotation`` says how to go on) → fine-tune → evaluate, resumable."""
    from taast_ray.lock import run_lock

    cfg = configure(config, settings, **options)  # before torch and Ultralytics: bad input fails fast
    _check_out(str(out), out_flag, uris=False, why="a run trains in its run directory and needs a path (on a "
               "cluster, a shared mount); `taast select --pool` takes s3:// or gs://")
    from taast_ray.loop.cycle import run_cycles
    from taast_ray.loop.preflight import check_run_inputs, undo_failed_first_start
    from taast_ray.loop.production import AwaitingAnnotation
    from taast_ray.ray_env import ensure_ray

    out = Path(out)
    check_run_inputs(cfg, out, resume)  # data, models, directory: before Ray, no file
    ensure_ray(cfg.ray.address, worker_logs=cfg.ray.worker_logs)
    try:
        with run_lock(out, on_stale=on_stale_lock), undo_failed_first_start(out, resume, keep=(AwaitingAnnotation,)):
            return RunResult(out, run_cycles(cfg, out, resume=resume))
    except AwaitingAnnotation as exc:
        return RunResult(out, awaiting_annotation=str(exc))
