"""A real multi-node Ray cluster on this machine: `ray start --head` (no CPUs, so every actor
runs on the worker node), a worker node, `taast select` submitted with `ray job submit`, and a
worker node killed mid-pass."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taast_ray.io import list_parquet
from taast_ray.bench.local_cluster import free_port, node_agent_ports
from taast_ray.ray_env import worker_pool_env
from tests.factories import write_labels

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


class LocalCluster:
    """Head and worker nodes as `ray start --block` process groups, stopped without `ray stop`
    (which would also stop the test session's own Ray instance)."""

    def __init__(self, temp_dir: str):
        self.port, self.dashboard = free_port(), free_port()
        # loopback only; Ray 2.60's token auth would need the token handed to every process
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": "", **worker_pool_env()}
        self.temp_dir, self.nodes = temp_dir, []
        self._start(["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=true",
                     "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard}",
                     f"--temp-dir={temp_dir}"])
        self.url = f"http://127.0.0.1:{self.dashboard}"
        deadline = time.time() + 240  # a loaded 2-core machine took over 90 s
        while not self._up():
            assert time.time() < deadline, "the head node's dashboard never came up"
            time.sleep(1)
        self.worker = self.add_worker()

    def _start(self, args):
        # node_agent_ports: the default agent ports are held by the test session's own Ray instance
        proc = subprocess.Popen([str(BIN / "ray"), "start", "--block", *args, *node_agent_ports()], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.nodes.append(proc)
        return proc

    def _up(self) -> bool:
        try:
            return urllib.request.urlopen(f"{self.url}/api/version", timeout=2).status == 200
        except OSError:
            return False

    def add_worker(self):
        # the custom resource marks the worker type a user may pin the central actor to
        return self._start([f"--address=127.0.0.1:{self.port}", "--num-cpus=2",
                            '--resources={"taast_aggregator": 1}'])

    def aggregator_nodes(self) -> dict[str, bool]:
        """For each central actor the cluster ran (by actor id), whether it ran on the head node."""
        actors = json.loads(self.ray("list", "actors", "--address", self.url, "--detail", "--format", "json",
                                     "--filter", "class_name=CentralAggregator").stdout)
        nodes = json.loads(self.ray("list", "nodes", "--address", self.url, "--detail", "--format", "json").stdout)
        head = {n["node_id"] for n in nodes if n.get("is_head_node")}
        return {a["actor_id"]: a["node_id"] in head for a in actors}

    def kill(self, proc):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def ray(self, *args, timeout=400):
        return subprocess.run([str(BIN / "ray"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def submit(self, *args):
        """`ray job submit`, retried while the head's job agent is still starting: the dashboard
        answers before its agent registers, and a loaded CI machine showed that gap."""
        deadline = time.time() + 240
        while True:
            done = self.ray("job", "submit", "--address", self.url, *args)
            if "No available agent" not in done.stdout + done.stderr or time.time() > deadline:
                return done
            time.sleep(3)

    def stop(self):
        """SIGTERM, then SIGKILL what is left after one shared grace period: `ray start --block`
        outlived 10 s of SIGTERM on both nodes in every CI run (20 s of teardown for nothing)."""
        for proc in reversed(self.nodes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for proc in self.nodes:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="trmn", dir="/tmp")  # short: Ray's socket paths have a length limit
    c = LocalCluster(temp)
    yield c
    c.stop()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnpool")
    rng = np.random.default_rng(0)
    for i in range(44):
        Image.fromarray((rng.random((72, 96, 3)) * 255).astype(np.uint8)).save(root / f"f{i:03d}.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root, write_labels(root.parent / "labels.json", [5, 3, 1, 0])


def select_command(pool, labels, out, slow=False, *extra) -> list:
    """`taast select` as a job entrypoint; ``slow``: through tests/slow_select.py, the detector
    slowed by a test double so that a node can be killed while the pass runs."""
    program = [str(Path(__file__).parents[1] / "slow_select.py")] if slow else ["-m", "taast_ray.cli"]
    return ["--", str(BIN / "python"), *program, "select", "--pool", str(pool),
            "--labels", str(labels), "--weights", "yolov8n.yaml", "--imgsz", "64", "--embedder",
            "taast-tiny-ViT", "--embedder-weights", "none", "--budget", "4", "--out", str(out),
            "--rows-per-file", "10", "--set", "selection.det_conf=0.001", "--set", "ray.batch_size=5",
            "--set", "ray.detector_actors_max=1", *extra]


def selected(out) -> list:
    return pq.read_table(Path(out) / "selection.parquet").column("image_id").to_pylist()


def test_job_submit_and_a_worker_node_lost_mid_pass(cluster, pool, tmp_path):
    images, labels = pool
    done = cluster.submit(*select_command(images, labels, tmp_path / "calm", False,
                                          "--set", "ray.aggregator_resource=taast_aggregator"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    calm = cluster.aggregator_nodes()
    assert list(calm.values()) == [False]  # on the node type with the resource, not the head
    assert "selected 4 of 44 images" in done.stdout
    assert pq.read_table(tmp_path / "calm" / "errors.parquet").column("image_id").to_pylist() == ["broken.jpg"]

    out = tmp_path / "storm"
    submitted = cluster.submit("--no-wait", "--submission-id", "storm", *select_command(images, labels, out, slow=True))
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    deadline = time.time() + 300
    while not list_parquet(out / "detections"):
        assert time.time() < deadline, "no detections file was ever written"
        time.sleep(0.3)
    cluster.kill(cluster.worker)  # the only node with CPUs: every detector actor dies with it
    assert not (out / "summary.json").exists()
    cluster.worker = cluster.add_worker()
    status = ""
    while "succeeded" not in status and "failed" not in status.lower():
        assert time.time() < deadline + 300, "the job never finished"
        time.sleep(2)
        status = cluster.ray("job", "status", "--address", cluster.url, "storm").stdout.lower()
    if "succeeded" not in status:  # re-submission resumes from the files written
        again = cluster.submit(*select_command(images, labels, out), "--resume")
        assert again.returncode == 0, again.stdout[-2000:]
    assert selected(out) == selected(tmp_path / "calm")
    storm = {k: v for k, v in cluster.aggregator_nodes().items() if k not in calm}
    assert storm and all(storm.values())  # by default on the head
    scored = pq.read_table(out / "scores.parquet").column("image_id").to_pylist()
    assert len(scored) == len(set(scored)) == 44
