"""Issue 31: a local run listens on loopback only, whatever it starts: the production loop (a
warm-up through Ray Train, then the live pass through Ray Data) and an experiment (warm-up, a
cycle's selection and fine-tune, evaluation). `--address local` and the default local instance
are tests/test_ray_env.py's.

Each command runs as `taast` in a child process; while it runs, `ss -ltnp` is read every 0.2 s
and every TCP listener of the child's process tree (the driver, GCS, raylet, Ray's workers and
agents, Ray Train's workers and their process group) is kept, with the process name."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from taast_ray.cli import main
from taast_ray.data.synth import make_synthetic_dataset
from tests.test_ray_env import LOOPBACK

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")]
TAAST = [sys.executable, "-c", "from taast_ray.cli import entry; entry()"]
TINY_TRAIN = {"imgsz": 64, "batch": 8, "workers": 1, "warmup_epochs": 1, "epochs": 1, "optimizer": "AdamW",
              "lr0": 0.002}
TINY_RAY = {"detector_actors_max": 1, "embedder_actors_max": 1, "batch_size": 16}
TINY_MODEL = {"weights": "yolov8n.yaml", "embedder": "taast-tiny-ViT", "embedder_weights": "none"}


def _tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for line in subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    mine, stack = set(), [root]
    while stack:
        pid = stack.pop()
        mine.add(pid)
        stack += children.get(pid, [])
    return mine


def listeners_while_running(argv: list[str], cwd: Path, timeout: float = 400) -> tuple[int, dict[str, str], str]:
    """(exit code, {listening address: process name} over the whole run, stderr)."""
    proc = subprocess.Popen(TAAST + argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        mine = _tree(proc.pid)
        for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
            fields = line.split()
            for pid in mine:
                if f"pid={pid}," in line:
                    seen[fields[3]] = line.split('(("', 1)[-1].split('"', 1)[0]
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    return proc.wait(), seen, proc.stderr.read()


def assert_loopback_only(seen: dict[str, str], must_include: str) -> None:
    assert len(seen) >= 5, seen  # GCS, raylet, workers, agents, the trainer: the count is real
    assert any(must_include in name for name in seen.values()), seen  # the stage under test ran
    assert {a: n for a, n in seen.items() if not a.startswith(LOOPBACK)} == {}


def test_a_production_run_listens_on_loopback_only(tmp_path):
    """`taast run` in production mode from a model YAML: Ray Train's warm-up on L (its process
    group too), then the pool's live pass; it stops for the annotators (exit 3)."""
    make_synthetic_dataset(tmp_path / "synth", images=60, classes=3, seed=3, image_size=64, zipf=0.3,
                           eval_min_instances=0)
    for f in sorted((tmp_path / "synth" / "yolo" / "labels" / "train").glob("*.txt"))[20:]:
        f.unlink()  # the rest is the pool
    assert main(["import", "yolo", str(tmp_path / "synth" / "yolo" / "dataset.yaml"), "--out",
                 str(tmp_path / "imported")]) == 0
    config = {**yaml.safe_load((tmp_path / "imported" / "taast.yaml").read_text()),
              "selection": {"budget": 4, "det_conf": 0.01}, "model": TINY_MODEL, "train": TINY_TRAIN,
              "protocol": {"cycles": 1}, "ray": TINY_RAY}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    code, seen, err = listeners_while_running(["run", "--config", "run.yaml", "--out", "run"], tmp_path)
    assert code == 3, err[-3000:]
    assert (tmp_path / "run" / "cycle_1" / "select" / "selection.parquet").is_file()
    assert_loopback_only(seen, "RayTrainWo")


def test_an_experiment_listens_on_loopback_only(tmp_path):
    exp = {"name": "sockets", "seeds": [5], "strategies": ["random"], "parallel_trials": 1,
           "base": {"data": {"synthetic_images": 80, "synthetic_classes": 3, "synthetic_image_size": 64},
                    "selection": {"budget": 4}, "model": TINY_MODEL, "train": TINY_TRAIN,
                    "protocol": {"cycles": 1, "seed_fraction": 0.3}, "ray": TINY_RAY}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    code, seen, err = listeners_while_running(["experiment", "--config", "exp.yaml", "--out", "exp"], tmp_path)
    assert code == 0, err[-3000:]
    assert json.loads((tmp_path / "exp" / "results.json").read_text())["trials"]
    assert_loopback_only(seen, "RayTrainWo")
