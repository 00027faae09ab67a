"""Joining or starting Ray, and resource requests decided from the cluster, not the driver."""
from __future__ import annotations

import contextlib
import logging
import os

from taast_ray.errors import TaastError
from taast_ray.address import check_address, split_address


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

    address = cluster_address(address)
    check_address(address)  # a typo or an unreachable head: one line in seconds, not minutes of retries
    if ray.is_initialized():
        return
    # a local instance, or one on this machine's loopback (a laptop's `ray start`, the tests'):
    # this driver's node address is loopback too, or it would look for its raylet elsewhere
    on_loopback = not address or _is_loopback(address)
    if not address:  # a local instance: its raylet reads these (as environment, not _system_config,
        for name, value in worker_pool_env().items():  # which prints an "unstable API" warning)
            os.environ.setdefault(name, value)
    if address:  # the driver's GCS client logs every failed retry on stderr; the failure is one line
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    try:
        with loopback_only(on_loopback):
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     configure_logging=False, log_to_driver=worker_logs,
                     **({"_node_ip_address": LOOPBACK} if on_loopback else {}))
    except (ConnectionError, TimeoutError) as exc:
        raise TaastError(f"ray.address: cannot join the Ray cluster at {address!r}: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    if not worker_logs:
        quiet_ray_data_console()


LOOPBACK = "127.0.0.1"


def _is_loopback(address: str) -> bool:
    try:
        target = split_address(address)
    except ValueError:
        return False
    return target is not None and (target[0] in ("localhost", "::1") or target[0].startswith("127."))
# Ray 2.60 turns a loopback node address into the host's address (services.resolve_ip_for_localhost)
# unless cluster mode is off, as it is on macOS and Windows (ray_constants.ENABLE_RAY_CLUSTER, read
# from this variable when Ray is imported). With it off and the node address 127.0.0.1, the GCS,
# raylet, workers and the dashboard agents all bind 127.0.0.1 instead of 0.0.0.0 / the host's address.
_CLUSTER_MODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_only(enabled: bool = True):
    """While a local instance starts: its processes (which inherit the environment) and the
    driver's own copy of Ray's constant see cluster mode off; both are restored afterwards, so a
    later ``ray start`` or a cluster join from this process is unaffected."""
    if not enabled:
        yield
        return
    from ray._private import ray_constants

    saved_env, saved_flag = os.environ.get(_CLUSTER_MODE_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_MODE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_CLUSTER_MODE_ENV, None)
        else:
            os.environ[_CLUSTER_MODE_ENV] = saved_env


def local_init_kwargs() -> dict:
    """``ray.init`` keyword arguments of a loopback-only local instance (use inside loopback_only)."""
    return {"_node_ip_address": LOOPBACK, "include_dashboard": False}


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


def actor_resources(use_gpu: str = "auto", cpus_per_actor: float = 1.0) -> "DetectResources":
    """One GPU per model actor when GPUs are wanted, else one CPU."""
    from taast_ray.stages.detect import DetectResources  # imports torch: not before the checks

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
