"""Joining or starting Ray, and resource requests decided from the cluster, not the driver."""
from __future__ import annotations

import contextlib
import logging
import os
import re

from taast_ray.errors import TaastError
from taast_ray.address import check_address, split_address
from taast_ray.stages.stage import StageResources  # no torch: safe before the checks


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
    # a local instance (no address, or "local": a new one even where RAY_ADDRESS is set), or one on
    # this machine's loopback (a laptop's `ray start`, the tests'): this driver's node address is
    # loopback too, or it would look for its raylet elsewhere
    starts_local = address in (None, "local")
    on_loopback = starts_local or _is_loopback(address)
    if starts_local:  # its raylet reads these (as environment, not _system_config,
        for name, value in worker_pool_env().items():  # which prints an "unstable API" warning)
            os.environ.setdefault(name, value)
    else:  # the driver's GCS client logs every failed retry on stderr; the failure is one line
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    try:
        with loopback_only(on_loopback), quiet_ray_start(not worker_logs):
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     configure_logging=False, log_to_driver=worker_logs,
                     **({"_node_ip_address": LOOPBACK} if on_loopback else {}))
    except (ConnectionError, TimeoutError) as exc:
        raise TaastError(f"ray.address: cannot join the Ray cluster at {address!r}: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    except Exception as exc:  # Ray raises a bare Exception when its raylet misses its 30 s start window
        if "timed out during startup" not in str(exc):
            raise
        raise TaastError("ray: the local Ray instance did not start within Ray's 30 s (its raylet timed out; "
                         "an overloaded machine?); run the command again, or start one with `ray start "
                         "--head` and pass --address") from None
    if not worker_logs:
        quiet_ray_data_console()
        quiet_ray_noise()


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


def quiet_ray_data_console() -> None:
    """Ray Data prints each dataset's plan and progress at INFO on the console (every few seconds
    when stdout is not a terminal); keep warnings there, everything in the session's ray-data.log."""
    import ray.data  # noqa: F401  (configures the "ray.data" logger and its handlers)

    for handler in logging.getLogger("ray.data").handlers:
        if handler.get_name() == "console":
            handler.setLevel(logging.WARNING)


# Ray's start-up and scheduling notices, which say nothing a taast user can act on (issue 16);
# `-v` (ray.worker_logs) shows them. The C++ core worker writes some straight to file descriptor 2.
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"  # the token-auth notice
RAY_NOISE = tuple(re.compile(p) for p in (
    r"Token authentication is (enabled|disabled) for this Ray cluster",
    r"has constructor arguments in the object store and max_restarts > 0",
    r"have not registered within the timeout",           # worker processes slow to start
    r"PYTHON worker processes have been started on node",  # the raylet's worker-start warning
    r"does not have any available CPUs",
    r"resource request cannot be scheduled right now",
    r"The maximum number of concurrent tasks for .* is set to",
))


@contextlib.contextmanager
def quiet_ray_start(enabled: bool = True):
    """ray.init without the token-authentication notice (a logger warning) unless verbose."""
    if not enabled:
        yield
        return
    auth = logging.getLogger(_AUTH_LOGGER)
    saved = auth.level
    auth.setLevel(logging.ERROR)
    try:
        yield
    finally:
        auth.setLevel(saved)


def quiet_ray_noise() -> None:
    """Ray Data's concurrency UserWarning, and the driver's own stderr lines matching RAY_NOISE
    (the C++ core worker's constructor-arguments line), dropped for the rest of the process."""
    import warnings

    warnings.filterwarnings("ignore", message=r"The maximum number of concurrent tasks", category=UserWarning)
    quiet_raylet_notices()
    if _StderrFilter.allowed:
        _StderrFilter.install(RAY_NOISE)


def quiet_raylet_notices() -> None:
    """The raylet's notices (its worker-start warning among them) reach the driver through the GCS
    and Ray prints them on *stdout*, in the middle of a run's progress (worker.listen_error_messages
    → print_to_stdstream), where the stderr filter cannot see them: lines matching RAY_NOISE are
    dropped there, every other line is printed as Ray would."""
    from ray._private import worker as ray_worker

    original = ray_worker.print_to_stdstream
    if getattr(original, "quiet", False):
        return

    def print_to_stdstream(data, ignore_prefix):
        lines = [line for line in data.get("lines", []) if not any(p.search(line) for p in RAY_NOISE)]
        if lines:
            original({**data, "lines": lines}, ignore_prefix)

    print_to_stdstream.quiet = True
    ray_worker.print_to_stdstream = print_to_stdstream


class _StderrFilter:
    """File descriptor 2 through a pipe; a thread copies every line that matches no pattern to
    the real stderr. Installed after ray.init, so Ray's own processes keep the real stderr;
    :func:`flush_stderr_filter` (the CLI's exit) puts it back and drains the pipe."""
    active: "_StderrFilter | None" = None
    allowed = False  # the `taast` command's process only (cli.entry), never a library user's or pytest's

    def __init__(self, patterns):
        import threading

        self.patterns = patterns
        self.real = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.read = read
        self.thread = threading.Thread(target=self._copy, name="taast-stderr-filter", daemon=True)
        self.thread.start()

    @classmethod
    def install(cls, patterns) -> None:
        if cls.active is None:
            import atexit
            import sys

            sys.stderr.flush()
            cls.active = cls(patterns)
            atexit.register(flush_stderr_filter)

    def _copy(self) -> None:
        with os.fdopen(self.read, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(line + b"\n")
            if pending:
                self._emit(pending)

    def _emit(self, line: bytes) -> None:
        text = line.decode(errors="replace")
        if not any(p.search(text) for p in self.patterns):
            os.write(self.real, line)

    def close(self) -> None:
        import sys

        sys.stderr.flush()
        os.dup2(self.real, 2)  # the pipe's last writer gone: the thread reads to its end
        self.thread.join(timeout=5)


def allow_stderr_filter() -> None:
    """Let :func:`quiet_ray_noise` take over file descriptor 2 in this process (the CLI's)."""
    _StderrFilter.allowed = True


def flush_stderr_filter() -> None:
    """Restore file descriptor 2 and copy out what the filter still holds (before os._exit)."""
    if _StderrFilter.active is not None:
        _StderrFilter.active.close()
        _StderrFilter.active = None


def wants_gpu(use_gpu: str = "auto", needed: int = 1) -> bool:
    """Decided from the cluster's resources (a CPU-only head still sees its GPU workers), never
    from the driver's torch.cuda; "true" asks even while the autoscaler has no GPU node up."""
    import ray

    if use_gpu in ("true", "false"):
        return use_gpu == "true"
    return ray.cluster_resources().get("GPU", 0) >= needed


def stage_resources(stage_cls, use_gpu: str = "auto") -> StageResources:
    """What one actor of ``stage_cls`` asks Ray for: the stage declares its needs with a GPU and
    without (``Stage.resources``); whether GPUs are wanted is decided here, from the cluster."""
    return stage_cls.resources(gpu=wants_gpu(use_gpu))


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
