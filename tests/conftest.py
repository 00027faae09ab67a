"""Shared fixtures: one local Ray instance for the whole session (ray.init takes seconds)."""
import os

import pytest

import taast_ray  # noqa: F401  (offline switches before anything imports Ultralytics)

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from taast_ray.ray_env import LOOPBACK, loopback_only, worker_pool_env

    if not ray.is_initialized():
        os.environ.update(worker_pool_env())  # as taast's own local instances (ensure_ray)
        with loopback_only():  # listening on 127.0.0.1 only, as ensure_ray's
            ray.init(num_cpus=2, ignore_reinit_error=True, log_to_driver=False, configure_logging=False,
                     _node_ip_address=LOOPBACK, include_dashboard=False)
    yield ray


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio server for the session: (url, document root). tests/labelstudio_server.py."""
    from tests.labelstudio_server import start

    yield from start(tmp_path_factory)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The fuzzers' table (tests/fuzz_stats.py): boundary, examples run, seconds, where any ran."""
    import sys

    stats = sys.modules.get("tests.fuzz_stats")
    lines = stats.table() if stats is not None else []
    if lines:
        terminalreporter.write_sep("-", "fuzzers: boundary, examples, seconds")
        for line in lines:
            terminalreporter.write_line(line)
