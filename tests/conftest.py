"""Shared fixtures: one local Ray instance for the whole session (ray.init takes seconds)."""
import os

import pytest

import taast_ray  # noqa: F401  (offline switches before anything imports Ultralytics)

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from taast_ray.ray_env import worker_pool_env

    if not ray.is_initialized():
        os.environ.update(worker_pool_env())  # as taast's own local instances (ensure_ray)
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False, configure_logging=False)
    yield ray
