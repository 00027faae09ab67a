"""Where the Ray detector pass spends its time, against the plain loop (issue 8's ratio).

One pass of ``detect_pool`` with an instrumented ``DetectStage`` (it records, per actor, the time
from construction to the first batch, the seconds inside ``__call__`` and torch's thread count),
the plain loop with torch at 1 thread and at all threads, and the CPU seconds every process on the
machine used during the Ray pass, grouped by process name (raylet, GCS, driver, read workers,
model actors).

    .venv/bin/python benchmarks/ray_profile.py --images 1000 --size 1280x720 --actors 1

Prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

import taast_ray  # noqa: F401
from taast_ray.bench.data import write_jpeg_pool
from taast_ray.bench.ray_scaling import plain_loop
from taast_ray.config import load_config
from taast_ray.pipeline.live import detect_pool
from taast_ray.ray_env import worker_pool_env
from taast_ray.stages.detect import DetectStage
from taast_ray.stages.sources import list_pool_table


class TimedDetectStage(DetectStage):
    """DetectStage that appends one JSON line per batch to ``$TAAST_PROFILE_LOG``."""

    def __init__(self, *args, **kwargs):
        self._born = time.time()
        super().__init__(*args, **kwargs)

    def setup(self):
        super().setup()  # the actor's constructor runs it: born → ready spans the model load
        self._ready = time.time()

    def __call__(self, batch):
        import torch

        start = time.time()
        out = super().__call__(batch)
        with open(os.environ["TAAST_PROFILE_LOG"], "a") as log:
            log.write(json.dumps({"pid": os.getpid(), "born": self._born, "ready": self._ready,
                                  "start": start, "end": time.time(), "rows": out.num_rows,
                                  "threads": torch.get_num_threads()}) + "\n")
        return out


def cpu_by_process() -> dict[int, tuple[str, float]]:
    seen = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            t = proc.cpu_times()
            name = " ".join(proc.info["cmdline"] or [])[:60] or proc.info["name"]
            seen[proc.info["pid"]] = (name if "ray::" not in proc.info["name"] else proc.info["name"],
                                      t.user + t.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return seen


class CpuSampler:
    """Samples every process's CPU seconds twice a second, so processes that start and exit during
    the pass (worker processes Ray starts for short tasks and kills when idle) are counted too."""

    def __init__(self, period: float = 0.5):
        import threading

        self.before, self.latest, self.period = cpu_by_process(), {}, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.latest.update(cpu_by_process())
            self._stop.wait(self.period)

    def stop(self) -> tuple[dict, dict, int]:
        self._stop.set()
        self._thread.join()
        self.latest.update(cpu_by_process())
        started = sorted(set(self.latest) - set(self.before))
        return self.before, self.latest, len(started)


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    grouped: dict[str, float] = defaultdict(float)
    for pid, (name, seconds) in after.items():
        grouped[name] += seconds - before.get(pid, (name, 0.0))[1]
    return {k: round(v, 1) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1]) if v >= 0.5}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-loop", action="store_true")
    parser.add_argument("--ray-default-worker-pool", action="store_true",
                        help="leave Ray's idle-worker killing at its defaults (what the fix replaced)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    cfg = load_config(None, {"model": {"weights": "yolov8n.yaml", "imgsz": args.imgsz},
                             "ray": {"batch_size": args.batch_size, "detector_actors_min": args.actors,
                                     "detector_actors_max": args.actors}})
    work = Path(tempfile.mkdtemp(prefix="taast-rayprof-"))
    report = {"settings": vars(args)}
    try:
        paths = write_jpeg_pool(work / "pool", args.images, width, height, seed=0)
        if not args.skip_loop:
            import torch

            threads = torch.get_num_threads()
            for n in sorted({1, threads}):
                torch.set_num_threads(n)
                report[f"loop_{n}_threads"] = plain_loop(paths, cfg, 80)
            torch.set_num_threads(threads)
        listing = list_pool_table(work / "pool")
        log = work / "profile.jsonl"
        import ray

        if not args.ray_default_worker_pool:
            os.environ.update(worker_pool_env())
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"TAAST_PROFILE_LOG": str(log)}})
        sampler, start = CpuSampler(), time.time()
        detect_pool(cfg, listing, work / "out", 80, stage_cls=TimedDetectStage)
        end = time.time()
        before, after, processes_started = sampler.stop()
        batches = [json.loads(line) for line in log.read_text().splitlines()]
        per_actor = defaultdict(list)
        for b in batches:
            per_actor[b["pid"]].append(b)
        actors = []
        for pid, rows in per_actor.items():
            inside = sum(r["end"] - r["start"] for r in rows)
            actors.append({"pid": pid, "threads": rows[0]["threads"], "batches": len(rows),
                           "images": sum(r["rows"] for r in rows),
                           "born_after_s": round(rows[0]["born"] - start, 2),
                           "model_load_s": round(rows[0]["ready"] - rows[0]["born"], 2),
                           "first_batch_after_s": round(min(r["start"] for r in rows) - start, 2),
                           "last_batch_end_before_finish_s": round(end - max(r["end"] for r in rows), 2),
                           "inside_call_s": round(inside, 2),
                           "images_per_s_inside_call": round(sum(r["rows"] for r in rows) / inside, 2)})
        cpu = cpu_delta(before, after)
        report["ray"] = {"seconds": round(end - start, 2), "images_per_s": round(args.images / (end - start), 2),
                         "actors": actors, "cpu_seconds_by_process": cpu, "cpu_seconds_all": round(sum(cpu.values()), 1),
                         "processes_started": processes_started}
        print(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
