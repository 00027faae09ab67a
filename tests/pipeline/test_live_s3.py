"""`taast select --pool s3://… --out s3://…`: the pool read from, and the run directory kept on, an
object store, killed mid-pass and resumed from what it had written there.

The object store is moto's S3 server (a test double for S3: no cloud is reachable from here),
spoken to over HTTP by pyarrow's real S3 filesystem in the driver, the Ray workers and the
aggregator. The runs are subprocesses with a Ray instance of their own, so that every Ray worker
inherits the endpoint variables; the reference run uses the session's Ray on a local copy.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taast_ray.config import load_config
from taast_ray.pipeline.live import select_live
from tests.factories import write_labels

pytestmark = pytest.mark.slow
moto_server = pytest.importorskip("moto.server")
FLAGS = ["--budget", "4", "--seed", "7", "--tau", "0.5", "--weights", "yolov8n.yaml", "--imgsz", "64",
         "--embedder", "taast-tiny-ViT", "--embedder-weights", "none", "--rows-per-file", "12",
         "--set", "selection.det_conf=0.001", "--set", "ray.batch_size=4", "--set", "ray.detector_actors_max=1"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on a free port; yields (environment for the runs, pyarrow S3 filesystem)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing", secret_key="testing",
                           region="us-east-1", allow_bucket_creation=True)
    fs.create_dir("bucket")
    yield env, fs
    server.stop()


@pytest.fixture(scope="module")
def pool(s3, tmp_path_factory):
    """36 JPEGs and one broken file, on local disk and under s3://bucket/pool/."""
    _, fs = s3
    root = tmp_path_factory.mktemp("s3pool")
    local = root / "pool"
    local.mkdir()
    rng = np.random.default_rng(0)
    for i in range(36):
        Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).save(local / f"f{i:03d}.jpg")
    (local / "broken.jpg").write_bytes(b"not a jpeg")
    for path in local.iterdir():
        with fs.open_output_stream(f"bucket/pool/{path.name}") as out:
            out.write(path.read_bytes())
    return local, write_labels(root / "labels.json", [5, 3, 1, 0])


def run(env: dict, pool: str, labels, out: str, *extra, wait=True):
    """The real CLI; without ``wait``, with the detector slowed (a test double) and held once the
    first detections file is on S3, so a kill timed on that file lands mid-pass."""
    program = ["-m", "taast_ray.cli"] if wait else [str(Path(__file__).parents[1] / "slow_select.py"),
                                                    "--hold-once-written", f"{out}/detections"]
    cmd = [sys.executable, *program, "select", "--pool", pool, "--labels", str(labels),
           "--out", out, *FLAGS, *extra]
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | env
    if wait:
        return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def files(fs, prefix: str) -> list[str]:
    info = fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True, recursive=True))
    return [i.path for i in info if i.type == pafs.FileType.File]


def test_run_directory_on_s3_survives_a_kill_and_resumes(s3, pool, tmp_path, ray_local):
    env, fs = s3
    local, labels = pool
    cfg = load_config(None, {"selection": {"budget": 4, "det_conf": 0.001, "tau": 0.5, "seed": 7},
                             "model": {"weights": "yolov8n.yaml", "imgsz": 64, "embedder": "taast-tiny-ViT",
                                       "embedder_weights": "none"},
                             "ray": {"batch_size": 4, "detector_actors_max": 1}})
    reference = select_live(cfg, str(local), labels, tmp_path / "local")

    proc = run(env, "s3://bucket/pool", labels, "s3://bucket/run", wait=False)
    deadline = time.time() + 300
    while not [f for f in files(fs, "bucket/run/detections") if f.endswith(".parquet")]:
        assert proc.poll() is None and time.time() < deadline, "no detections file reached S3"
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "bucket/run/summary.json" not in files(fs, "bucket/run")

    resumed = run(env, "s3://bucket/pool", labels, "s3://bucket/run", "--resume")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    before = int(re.search(r"(\d+) detected before", resumed.stdout).group(1))
    assert 12 <= before < 37, resumed.stdout

    written = set(files(fs, "bucket/run"))
    for name in ("selection.parquet", "scores.parquet", "errors.parquet", "summary.json", "config.yaml",
                 "pseudo_labels.json", "label_studio_tasks.json"):
        assert f"bucket/run/{name}" in written, name
    assert any(f.startswith("bucket/run/embedding_cache/") for f in written)
    read = lambda name: pq.read_table(f"bucket/run/{name}", filesystem=fs)  # noqa: E731
    assert read("selection.parquet").column("image_id").to_pylist() == \
        pq.read_table(tmp_path / "local" / "selection.parquet").column("image_id").to_pylist()
    assert read("selection.parquet").column("uri")[0].as_py().startswith("s3://bucket/pool/")
    assert read("errors.parquet").column("image_id").to_pylist() == ["broken.jpg"]
    det = read("detections").column("image_id").to_pylist()
    assert len(det) == len(set(det)) == 37  # nothing lost or run twice across the kill
    assert reference["selected"] == 4


def test_only_select_with_a_pool_writes_to_an_object_store(tmp_path):
    done = subprocess.run([sys.executable, "-m", "taast_ray.cli", "run", "--out", "s3://bucket/run"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("taast: error: --out: s3://bucket/run is a URI")
