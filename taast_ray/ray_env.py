"""Joining or starting Ray, and resource requests decided from the cluster, not the driver."""
from __future__ import annotations

import logging
import os

from taast_ray.errors import TaastError
from taast_ray.stages.detect import DetectResources


# Ray kills a worker process once it has been idle for 1 s while more than num_cpus workers are
# idle; the pass's short 0-CPU read and write tasks then start a fresh process (importing Ray and
# pyarrow: 1-2 CPU-seconds) for almost every batch. On 2 cores that was 35 process starts and a
# fifth of all CPU time in a 3,000-image pass (benchmarks/README.md). Keep a few idle workers.
# Cluster nodes get the same through RAY_<name> environment variables (cluster/).
WORKER_POOL_CONFIG = {"num_workers_soft_limit": 8, "idle_worker_killing_time_threshold_ms": 60_000}


def worker_pool_env() -> dict[str, str]:
    """WORKER_POOL_CONFIG as the environment variables ``ray start`` reads."""
    return {f"RAY_{k}": str(v) for k, v in WORKER_POOL_CONFIG.items()}


def cluster_address(address: str | None = None) -> str | None:
    """The Ray cluster to join: ``address`` (``--address``, ``ray.address``), else $RAY_ADDRESS,
    else None for a local instance. The one place the environment variable is read."""
    return address or os.environ.get("RAY_ADDRESS") or None


def ensure_ray(address: str | None = None, *, worker_logs: bool = False) -> None:
    """Join :func:`cluster_address` when there is one, else start a local instance (once).

    Worker logs (Ultralytics' per-batch lines, Ray Train's reports) stay in Ray's log files
    unless ``worker_logs`` (``ray.worker_logs``, ``-v``): the driver prints one line per stage.
    """
    import ray

    if ray.is_initialized():
        return
    address = cluster_address(address)
    if not address:  # a local instance: its raylet reads these (as environment, not _system_config,
        for name, value in worker_pool_env().items():  # which prints an "unstable API" warning)
            os.environ.setdefault(name, value)
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             configure_logging=False, log_to_driver=worker_logs)
    if not worker_logs:
        quiet_ray_data_console()


def quiet_ray_data_console() -> None:
    """Ray Data prints each dataset's plan and progress at INFO on the console (every few seconds
    when stdout is not a terminal); keep warnings there, everything in the session's ray-data.log."""
    import ray.data  # noqa: F401  (configures the "ray.data" logger and its handlers)

    for handler in logging.getLogger("ray.data").handlers:
        if handler.get_name() == "console":
            handler.setLevel(logging.WARNING)


def wants_gpu(use_gpu: str = "auto", needed: int = 1) -> bool:
    """Decided from the cluster's resources (a CPU-only head still sees its GPU workers), never
    from the driver's torch.cuda; "true" asks even while the autoscaler has no GPU node up."""
    import ray

    if use_gpu in ("true", "false"):
        return use_gpu == "true"
    return ray.cluster_resources().get("GPU", 0) >= needed


def actor_resources(use_gpu: str = "auto", cpus_per_actor: float = 1.0) -> DetectResources:
    """One GPU per model actor when GPUs are wanted, else one CPU."""
    return DetectResources(num_cpus=cpus_per_actor, num_gpus=1.0 if wants_gpu(use_gpu) else 0.0)


def aggregator_placement(ray_cfg) -> dict:
    """Actor options that place the central actor: on the node type advertising
    ``ray.aggregator_resource`` when set, else on the head with ``ray.aggregator_on_head`` (it
    outlives worker nodes), else anywhere."""
    gpus = {"num_gpus": ray_cfg.aggregator_gpus} if ray_cfg.aggregator_gpus else {}
    if ray_cfg.aggregator_resource:
        return {"resources": {ray_cfg.aggregator_resource: 0.001}, **gpus}
    return {"resources": {"node:__internal_head__": 0.001}, **gpus} if ray_cfg.aggregator_on_head else gpus


def remote_call(method, *args):
    """ray.get on an actor method; our own one-line errors come back as themselves."""
    import ray

    try:
        return ray.get(method.remote(*args))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, TaastError):
            raise exc.cause from None
        raise
