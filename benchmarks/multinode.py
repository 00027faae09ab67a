"""``taast bench`` on a multi-node Ray cluster started on this machine: throughput against actors.

A head node with no CPUs (``ray start --head --num-cpus=0``: no model actor lands on it, as on a
cluster whose head only schedules) and ``--nodes`` worker nodes of ``--cpus-per-node`` CPUs each;
then the bench joins it with ``--actors 1,2,...`` up to what the workers hold. The nodes this
script started are stopped through their own process groups, never with ``ray stop`` (which
would stop every Ray instance on the machine). Token auth is off (RAY_AUTH_MODE=disabled): every
node listens on loopback only.

    .venv/bin/python benchmarks/multinode.py --nodes 4 -- --images 2000 --parts ray,e2e \\
        --out benchmarks/results/bench_multinode_cpu.json

Arguments after ``--`` go to ``taast bench`` (see ``taast bench --help``).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import taast_ray  # noqa: F401
from taast_ray.bench.run import add_bench_arguments, run_bench
from taast_ray.bench.local_cluster import free_port, node_agent_ports
from taast_ray.ray_env import ensure_ray, worker_pool_env

RAY = str(Path(sys.executable).parent / "ray")


def start_node(args: list[str], env: dict) -> subprocess.Popen:
    """``ray start --block`` in a process group of its own, so that exactly it can be stopped, its
    agents on free ports."""
    return subprocess.Popen([RAY, "start", "--block", *args, *node_agent_ports()], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_nodes(nodes: list[subprocess.Popen]) -> None:
    """SIGTERM to each node's group, then SIGKILL to whatever of the group is left (a GCS server
    can outlive its ``ray start``)."""
    for proc in reversed(nodes):
        _signal_group(proc, signal.SIGTERM)
    for proc in nodes:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def join_when_ready(address: str, cpus: float, timeout: float = 180) -> None:
    """Connect this driver once every worker node has registered its CPUs."""
    import ray

    deadline = time.time() + timeout
    while True:
        try:
            ensure_ray(address)
            if ray.cluster_resources().get("CPU", 0) >= cpus:
                return
        except ConnectionError:
            pass
        if time.time() > deadline:
            raise TimeoutError(f"the cluster at {address} did not reach {cpus} CPUs in {timeout:.0f} s")
        time.sleep(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=2, help="worker nodes (default 2)")
    parser.add_argument("--cpus-per-node", type=int, default=1, help="CPUs each worker offers (default 1)")
    parser.add_argument("--object-store-mb", type=int, default=512, help="object store per node (default 512)")
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- then taast bench arguments")
    args = parser.parse_args(argv)
    bench_parser = argparse.ArgumentParser(prog="taast bench")
    add_bench_arguments(bench_parser)
    bench_args = [a for a in args.bench if a != "--"]
    actors = ",".join(str(n) for n in range(1, args.nodes * args.cpus_per_node + 1))
    bench = bench_parser.parse_args(["--actors", actors, *bench_args])

    port, store = free_port(), str(args.object_store_mb * 1024 * 1024)
    os.environ["RAY_AUTH_MODE"] = "disabled"  # this driver too
    env = {**os.environ, "RAY_ADDRESS": "", **worker_pool_env()}
    temp = tempfile.mkdtemp(prefix="trmb", dir="/tmp")  # short: Ray's socket paths have a length limit
    nodes = [start_node(["--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false",
                         f"--object-store-memory={store}", f"--temp-dir={temp}"], env)]
    try:
        join_when_ready(f"127.0.0.1:{port}", 0)  # a worker started before its head gives up at once
        for n in range(1, args.nodes + 1):
            # one at a time: two raylets starting together on one host race for the same plasma
            # socket name, and the loser aborts (SIGABRT in PlasmaStore, raylet.N.out)
            nodes.append(start_node([f"--address=127.0.0.1:{port}", f"--num-cpus={args.cpus_per_node}",
                                     f"--object-store-memory={store}"], env))
            join_when_ready(f"127.0.0.1:{port}", n * args.cpus_per_node)
        bench.address = f"127.0.0.1:{port}"
        return run_bench(bench)
    finally:
        import ray

        ray.shutdown()
        stop_nodes(nodes)


if __name__ == "__main__":
    sys.exit(main())
