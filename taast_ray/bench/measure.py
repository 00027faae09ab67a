"""Timing and the machine a benchmark ran on, recorded beside every number."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

from taast_ray.versions import cpu


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer stops when the work is done, not when it is queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timer(device: torch.device | None = None):
    """``with timer() as t: ...`` then ``t()`` is the elapsed seconds."""
    if device is not None:
        sync(device)
    start = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0]
    if device is not None:
        sync(device)
    elapsed.append(time.perf_counter() - start)


def rate(items: int, seconds: float, share: float = 1.0) -> dict:
    """Items per second; ``pool_images_per_s`` is the pool size that rate sustains when the stage
    sees only ``share`` of the pool (the candidates, for the embedder and k-means)."""
    per_s = items / seconds if seconds > 0 else float("inf")
    return {"items": items, "seconds": round(seconds, 4), "items_per_s": round(per_s, 2),
            "pool_images_per_s": round(per_s / share, 2) if share > 0 else None}


def hardware() -> dict:
    """CPU, memory, GPUs, and the load when the run started (the development machine is shared)."""
    info = {**cpu(), "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "load_average_1m": round(os.getloadavg()[0], 2), "torch_threads": torch.get_num_threads(),
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
    return info

