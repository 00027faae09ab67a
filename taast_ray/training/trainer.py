"""Fine-tuning an Ultralytics detector under Ray Train: Ray owns the process group, not Ultralytics.

Ultralytics' own multi-device path spawns a second launcher and calls ``init_process_group``
itself. Here each Ray Train worker runs one ``DetectionTrainer`` subclass that joins the group
Ray Train already created, uses the device Ray assigned, and reports every epoch to Ray Train.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from taast_ray.config import TrainConfig
from taast_ray.errors import ConfigError

_PASSED_ENV = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE")  # the user's choice, to workers


def fine_tune(train: TrainConfig, dataset_yaml: str | Path, weights: str | Path, out_dir: str | Path, *,
              epochs: int, seed: int = 0, num_classes: int | None = None, use_gpu: str = "auto") -> dict:
    """Fine-tune ``weights`` on ``dataset_yaml`` for ``epochs`` with ``train.workers`` Ray Train
    workers (DDP), the optimizer and schedule of ``train`` (cosine learning rate); the per-call
    values (a warm-up's epochs or a cycle's, this cycle's weights) come beside it.

    ``train.batch`` is the global batch (split evenly over workers); ``train.cpus_per_worker`` the
    CPUs (and torch threads) each worker holds, None for Ray Train's default. The weights of the last
    epoch are kept; ``train.select_best_epoch`` validates after every epoch and keeps the best on the
    val split instead (Ultralytics' best.pt), which costs a validation pass per epoch and picks on
    that split. Returns ``checkpoint`` (final weights, optimizer stripped: ``out_dir/weights.pt``),
    ``ray_checkpoint`` (Ray Train's copy), ``metrics`` (last rank-0 report), ``workers``, ``seen``
    (per rank: device, images, DDP, file).
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from taast_ray.ray_env import ensure_ray, wants_gpu

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = train.workers
    model = _check_inputs(Path(dataset_yaml), weights, num_classes, workers, train.batch)
    ensure_ray()
    use_gpu = wants_gpu(use_gpu, needed=workers)  # from the cluster, not the driver's torch.cuda
    overrides = dict(model=model, data=str(Path(dataset_yaml).resolve()), epochs=epochs,
                     imgsz=train.imgsz, batch=train.batch, optimizer=train.optimizer, lr0=train.lr0,
                     lrf=train.lrf, momentum=train.momentum, weight_decay=train.weight_decay, cos_lr=True,
                     seed=seed, deterministic=True, amp=bool(use_gpu), plots=False,
                     val=train.select_best_epoch, project=str(out_dir / "runs"), name="train", exist_ok=True)
    cpus_per_worker = train.cpus_per_worker
    config = {"overrides": overrides, "out_dir": str(out_dir), "threads": cpus_per_worker,
              "env": {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}}
    trainer = TorchTrainer(
        _train_loop, train_loop_config=config,
        torch_config=loopback_torch_config(TorchConfig, backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu,
            resources_per_worker=None if cpus_per_worker is None else {"CPU": cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=f"fine_tune-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
            storage_path=str(out_dir / "ray_results"),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1)))
    with _epoch_progress(out_dir / EPOCH_FILE, epochs):
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"fine_tune: Ray Train reported no checkpoint under {out_dir}")
    return {"checkpoint": str(_final_weights(result.checkpoint, out_dir / "weights.pt")),
            "ray_checkpoint": result.checkpoint.path, "metrics": dict(result.metrics or {}),
            "workers": workers,
            "seen": (result.metrics or {}).get("seen", [])}


def loopback_torch_config(torch_config_cls, **kwargs):
    """Ray Train's TorchConfig, except that a process group whose rank 0 sits on a loopback node
    (a local instance: every worker is on this machine) meets through a file instead of a TCP
    store: torch's TCPStore listens on every interface whatever MASTER_ADDR says, and a local run
    listens on 127.0.0.1 only (ray_env.loopback_only). Workers on a real cluster's node addresses
    keep Ray Train's TCP rendezvous, which they need."""
    from ray.train.torch.config import _TorchBackend

    class _LoopbackTorchBackend(_TorchBackend):
        def on_start(self, worker_group, backend_config):
            import ray
            from ray.train._internal.utils import get_address_and_port
            from ray.train._internal.worker_group import WorkerGroup as V1WorkerGroup
            from ray.train.torch.config import _set_torch_distributed_env_vars, _setup_torch_process_group

            addr, _ = worker_group.execute_single(0, get_address_and_port)
            if not str(addr).startswith("127."):
                return super().on_start(worker_group, backend_config)
            self._store_dir = tempfile.mkdtemp(prefix="taast-pg-")
            if not isinstance(worker_group, V1WorkerGroup):
                worker_group.execute(_set_torch_distributed_env_vars)
            ray.get([worker_group.execute_single_async(
                i, _setup_torch_process_group, backend=backend_config.backend, world_rank=i,
                world_size=len(worker_group), init_method=f"file://{self._store_dir}/store",
                timeout_s=backend_config.timeout_s) for i in range(len(worker_group))])

        def on_shutdown(self, worker_group, backend_config):
            try:
                super().on_shutdown(worker_group, backend_config)
            finally:
                if getattr(self, "_store_dir", None):
                    shutil.rmtree(self._store_dir, ignore_errors=True)

    class LoopbackTorchConfig(torch_config_cls):
        @property
        def backend_cls(self):
            return _LoopbackTorchBackend

    return LoopbackTorchConfig(**kwargs)


EPOCH_FILE = "epoch.json"  # rank 0 writes {"epoch", "epochs"} after every epoch (out_dir is shared)


@contextmanager
def _epoch_progress(path: Path, epochs: int, poll_s: float = 2.0):
    """Epochs done, their rate and the time left, on the driver's stderr while Ray Train runs:
    a thread reads the file rank 0 rewrites after each epoch (the workers' own logs stay hidden)."""
    import threading

    from taast_ray.console import Progress

    path.unlink(missing_ok=True)
    progress = Progress("train", epochs, unit="epochs", every_s=30.0)
    stop = threading.Event()

    def watch():
        while not stop.wait(poll_s):
            try:
                progress.update(int(json.loads(path.read_text())["epoch"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue

    thread = threading.Thread(target=watch, name="taast-epoch-progress", daemon=True)
    if epochs > 0:
        thread.start()
    try:
        yield progress
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=poll_s + 1)


def _check_inputs(dataset_yaml: Path, weights, num_classes, workers: int, batch: int) -> str:
    """Fail on the driver, with one line, before any worker starts."""
    import yaml

    if not dataset_yaml.is_file():
        raise ConfigError(f"dataset_yaml: no such file {dataset_yaml}")
    if workers < 1 or batch < workers:
        raise ConfigError(f"batch: global batch {batch} must be ≥ workers ({workers}) ≥ 1")
    names = (yaml.safe_load(dataset_yaml.read_text()) or {}).get("names") or {}
    if num_classes is not None and names and len(names) != num_classes:
        raise ConfigError(f"num_classes: {num_classes}, but {dataset_yaml} has {len(names)}")
    w = Path(weights)
    if w.suffix in {".yaml", ".yml"}:  # random init; Ultralytics resolves its bundled model YAMLs
        return str(w.resolve()) if w.exists() else str(weights)
    if w.suffix != ".pt":
        raise ConfigError(f"weights: expected a .pt file or name, or a model YAML: {weights}")
    if w.exists():
        return str(w.resolve())
    if len(w.parts) > 1:  # Ultralytics would try to download a missing path under that name
        raise ConfigError(f"weights: no such file {weights}")
    return str(weights)  # a bare name (yolov8n.pt): Ultralytics downloads it, given the network


def _final_weights(checkpoint, dest: Path) -> Path:
    """Copy best.pt (else last.pt) out of Ray Train's checkpoint, without the optimizer state."""
    from ultralytics.utils.torch_utils import strip_optimizer

    with checkpoint.as_directory() as d:
        src = Path(d) / "best.pt" if (Path(d) / "best.pt").exists() else Path(d) / "last.pt"
        strip_optimizer(src, s=str(dest))
    return dest


def _train_loop(config: dict) -> None:
    """Runs on each Ray Train worker."""
    import ray.train.torch

    ctx = ray.train.get_context()
    world = ctx.get_world_size()
    # Ultralytics' convention: RANK = LOCAL_RANK = -1 unless there really are several processes
    rank, local = (ctx.get_world_rank(), ctx.get_local_rank()) if world > 1 else (-1, -1)
    # set before Ultralytics is first imported here: several modules copy these at import time
    os.environ.update(config["env"], RANK=str(rank), LOCAL_RANK=str(local), WORLD_SIZE=str(world))
    import taast_ray  # noqa: F401  (offline switches before Ultralytics)

    trainer_cls = _ray_trainer_class()
    device = ray.train.torch.get_device()  # Ray already narrowed CUDA_VISIBLE_DEVICES per worker
    device_arg = "cpu" if device.type == "cpu" else str(device.index or 0)
    with _ultralytics_ranks(rank, local, world):
        trainer = trainer_cls(overrides=dict(config["overrides"], device=device_arg),
                              world=world, out_dir=config["out_dir"], threads=config.get("threads"))
        trainer.add_callback("on_fit_epoch_end", _report_epoch)
        trainer.train()


@contextmanager
def _ultralytics_ranks(rank: int, local: int, world: int):
    """Patch RANK / LOCAL_RANK / WORLD_SIZE wherever Ultralytics copied them at import time:
    the env vars cover a fresh worker, this a pooled one that imported Ultralytics before."""
    values, saved = {"RANK": rank, "LOCAL_RANK": local, "WORLD_SIZE": world}, []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "ultralytics" or name.startswith("ultralytics.")):
            continue
        for attr, value in values.items():
            old = module.__dict__.get(attr)
            if isinstance(old, int) and not isinstance(old, bool):
                saved.append((module, attr, old))
                setattr(module, attr, value)
    try:
        yield
    finally:
        for module, attr, old in saved:
            setattr(module, attr, old)


def _report_epoch(trainer) -> None:
    """Ultralytics ``on_fit_epoch_end``: every rank reports (a Ray barrier); rank 0 adds weights."""
    import ray.train
    import torch.distributed as dist

    mine = trainer.write_seen()
    seen = [None] * trainer.world_size if trainer.world_size > 1 else [mine]
    if trainer.world_size > 1:  # small per-rank summaries; the file lists stay in seen_rank*.json
        dist.all_gather_object(seen, mine)
    metrics = {"epoch": trainer.epoch + 1, "seen": seen,
               **(trainer.label_loss_items(trainer.tloss) if trainer.tloss else {}),
               **{k: float(v) for k, v in (trainer.metrics or {}).items()}}
    if trainer.ray_rank == 0:  # for the driver's progress line (_epoch_progress)
        from taast_ray.io import write_json

        write_json(Path(trainer.seen_path).parent / EPOCH_FILE, {"epoch": trainer.epoch + 1,
                                                                 "epochs": trainer.epochs})
    if trainer.ray_rank > 0 or not trainer.last.exists():
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:  # report uploads synchronously, then tmp can go
        for f in (trainer.last, trainer.best):
            if f.exists():
                shutil.copy2(f, Path(tmp) / f.name)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _ray_trainer_class():
    """Built on first use so that Ultralytics is imported only after the rank env vars are set."""
    import torch
    import torch.distributed as dist
    from torch import nn
    from ultralytics.engine import trainer as ul_trainer
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import get_torch_device_backend, strip_optimizer

    class RayDetectionTrainer(DetectionTrainer):
        """DetectionTrainer as one rank of Ray Train's process group."""

        def __init__(self, *, overrides: dict, world: int, out_dir: str, threads: int | None = None):
            super().__init__(overrides=overrides)
            if threads is not None and self.device.type == "cpu":
                # Ultralytics' select_device just set min(8, cores - 1) torch threads, whatever
                # Ray assigned; use the CPUs this worker holds instead
                torch.set_num_threads(threads)
            self.ray_rank = dist.get_rank() if world > 1 else 0
            # Ultralytics counts devices in args.device (0 on CPU) and would spawn its own DDP
            # launcher for several; here the processes and the group already exist.
            self.world_size, self.ddp = world, False
            self.seen_path = Path(out_dir) / f"seen_rank{self.ray_rank}.json"
            self.seen_epochs: dict[int, list[str]] = {}
            # Ultralytics' Ray Tune callback would report from rank 0 alone inside a Tune trial;
            # Ray Train needs every rank to report the same number of times.
            self.callbacks["on_fit_epoch_end"] = [
                c for c in self.callbacks["on_fit_epoch_end"] if "raytune" not in c.__module__]

        def _setup_ddp(self):
            # Ray Train has already called init_process_group; only bind the device Ray assigned.
            from ray.train.torch import get_device

            if not dist.is_initialized():
                raise RuntimeError("Ray Train did not initialise the torch process group")
            self.device = get_device()
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
                self.accelerator = get_torch_device_backend(self.device)

        def _setup_train(self):
            if self.world_size < 2 or self.device.type != "cpu":
                return super()._setup_train()
            # Ultralytics wraps with device_ids=[device.index]; on CPU that is [None], which DDP
            # rejects. Swap the trainer module's `nn` for the length of this call only.
            ul_trainer.nn = _CpuDDPNamespace(nn)
            try:
                return super()._setup_train()
            finally:
                ul_trainer.nn = nn

        def preprocess_batch(self, batch):
            self.seen_epochs.setdefault(self.epoch, []).extend(batch["im_file"])
            return super().preprocess_batch(batch)

        def write_seen(self) -> dict:
            files = self.seen_epochs.get(self.epoch, [])
            epochs = {str(k): v for k, v in self.seen_epochs.items()}
            self.seen_path.write_text(json.dumps({"rank": self.ray_rank, "epochs": epochs}))
            return {"rank": self.ray_rank, "device": str(self.device), "images": len(files),
                    "unique": len(set(files)), "file": str(self.seen_path), "threads": torch.get_num_threads(),
                    "ddp": isinstance(self.model, nn.parallel.DistributedDataParallel)}

        def final_eval(self):
            # Ultralytics re-validates best.pt through AutoBackend on a CUDA device whenever
            # RANK >= 0, which fails on CPU workers; each epoch was already validated by all ranks.
            if self.ray_rank == 0:
                for f in (self.last, self.best):
                    if f.exists():
                        strip_optimizer(f)

    return RayDetectionTrainer


class _CpuDDPNamespace:
    """Stands in for ``torch.nn`` inside Ultralytics' trainer: DDP without device_ids on CPU."""

    def __init__(self, nn):
        self._nn = nn
        self.parallel = self

    def __getattr__(self, name):
        return getattr(self._nn, name)

    def DistributedDataParallel(self, module, device_ids=None, **kwargs):  # noqa: N802
        ids = [i for i in (device_ids or []) if i is not None] or None
        return self._nn.parallel.DistributedDataParallel(module, device_ids=ids, **kwargs)
