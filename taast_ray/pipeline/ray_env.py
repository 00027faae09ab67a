"""Joining or starting Ray, and resource requests decided from the cluster, not the driver."""
from __future__ import annotations

import logging
import os

from taast_ray.errors import TaastError
from taast_ray.stages.detect import DetectResources


def ensure_ray(address: str | None = None, *, worker_logs: bool | None = None) -> None:
    """Join ``address`` / $RAY_ADDRESS when given, else start a local instance (once).

    Worker logs (Ultralytics' per-batch lines, Ray Train's reports) stay in Ray's log files
    unless ``worker_logs`` or TAAST_WORKER_LOGS=1: the driver prints one line per stage instead.
    """
    import ray

    if ray.is_initialized():
        return
    if worker_logs is None:
        worker_logs = os.environ.get("TAAST_WORKER_LOGS", "0") == "1"
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             configure_logging=False, log_to_driver=worker_logs)


def actor_resources(cpus_per_actor: float = 1.0) -> DetectResources:
    """One GPU per model actor where the cluster has GPUs (a CPU-only head still counts them)."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    return DetectResources(num_cpus=cpus_per_actor, num_gpus=1.0 if gpus >= 1 else 0.0)


def remote_call(method, *args):
    """ray.get on an actor method; our own one-line errors come back as themselves."""
    import ray

    try:
        return ray.get(method.remote(*args))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, TaastError):
            raise exc.cause from None
        raise
