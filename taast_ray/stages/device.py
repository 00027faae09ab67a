"""Which device a stage's model goes on: what Ray granted the worker, not what the process sees.

Ray does not hide GPUs from a worker that asked for none: inside an actor started with
``num_gpus=0`` on a GPU node, ``torch.cuda.is_available()`` is still true, and a model placed by
it would use a GPU another actor reserved. So, with ``device: auto``, a stage inside a Ray
worker uses CUDA exactly when Ray granted it GPUs (``ray.get_gpu_ids()``); a plain process (the
driver, a test, a benchmark loop) keeps the process's own view.
"""
from __future__ import annotations

import sys


def granted_gpus() -> list | None:
    """The GPU ids Ray granted this worker, or None outside a Ray worker (a driver, a plain loop)."""
    ray = sys.modules.get("ray")  # a process that never imported Ray is not a Ray worker
    if ray is None or not ray.is_initialized():
        return None
    if ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return None
    return list(ray.get_gpu_ids())


def device_for(requested: str, gpu_ids: list | None) -> str:
    """``requested`` unless it is "auto"; then "cuda" with granted GPUs, "cpu" with none, and
    "auto" (the model wrapper asks torch) outside Ray."""
    if requested != "auto" or gpu_ids is None:
        return requested
    return "cuda" if gpu_ids else "cpu"


def granted_device(requested: str = "auto") -> str:
    return device_for(requested, granted_gpus())
