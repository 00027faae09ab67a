"""taast bench and benchmarks/gpu_pass.py end to end on tiny sizes: JSON, plot, exit codes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from taast_ray.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--size", "96x64", "--imgsz", "64", "--weights", "yolov8n.yaml", "--embedder", "taast-tiny-ViT",
        "--batch-size", "4", "--classes", "3", "--det-conf", "0.0005"]


def test_stages_selection_and_sklearn_parts(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--out", str(out), "--images", "8", "--parts", "stages,selection,sklearn",
                 "--score-images", "2000", "--kmeans-candidates", "600", "--dim", "16", "--budget", "8",
                 "--sklearn-n", "300,400", *TINY]) == 0
    report = json.loads(out.read_text())
    assert {"settings", "hardware", "versions", "stages", "selection", "kmeans_vs_sklearn"} <= set(report)
    steps = report["stages"]["steps"]
    assert set(steps) == {"read", "decode", "detector", "detections_table", "candidates", "embedder",
                          "decode_pillow"}
    assert steps["read"]["items"] == 8 and steps["embedder"]["items"] == 2 * 1  # ⌈0.2 · 4⌉ per batch
    assert sum(report["stages"]["time_share"].values()) == pytest.approx(1, abs=0.01)
    assert report["selection"]["kmeans"]["pool_images_per_s"] == pytest.approx(
        report["selection"]["kmeans"]["items_per_s"] / 0.2, rel=1e-3)
    assert [c["n"] for c in report["kmeans_vs_sklearn"]] == [300, 400]
    assert all(0.9 < c["inertia_ratio"] < 1.1 for c in report["kmeans_vs_sklearn"])
    assert report["versions"]["torch"] and report["hardware"]["cores"] >= 1
    assert "kmeans_speedup_vs_sklearn=" in capsys.readouterr().out


@pytest.mark.slow
def test_ray_part_per_actor_count_with_plot(tmp_path, ray_local):
    out = tmp_path / "r.json"
    assert main(["bench", "--out", str(out), "--images", "12", "--parts", "ray", "--actors", "1,3", *TINY]) == 0
    report = json.loads(out.read_text())
    one, three = report["ray"]["actors"]
    assert one["actors"] == 1 and one["detect_pass_images_per_s"] > 0 and one["ratio_to_plain_loop"] > 0
    assert three == {"actors": 3, "skipped": "the cluster holds 2 model actors"}  # the session's 2 CPUs
    assert report["ray"]["cluster"]["cpus"] == 2 and report["ray"]["plain_loop"]["images_per_s"] > 0
    assert Path(report["plot"]).stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["--size", "12"], "--size: '12' is not WIDTHxHEIGHT"), (["--actors", "0,2"], "--actors: '0,2' needs"),
    (["--parts", "stages,gpu"], "--parts: 'stages,gpu'"),
])
def test_bad_options_are_one_line_errors(args, message, tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path / "x.json"), "--images", "2", "--parts", "ray", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"taast: error: {message}") and err.count("\n") == 1


def test_gpu_pass_runs_without_ray(tmp_path):
    """benchmarks/gpu_pass.py must run where Ray cannot be installed: block the import."""
    script = ("import sys, runpy; sys.modules['ray'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", script, str(ROOT / "benchmarks" / "gpu_pass.py"),
                           "--device", "cpu", "--images", "8", "--warmup-batches", "1", "--workers", "1,2",
                           "--json", str(tmp_path / "g.json"), *TINY],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("images_per_s=")
    report = json.loads((tmp_path / "g.json").read_text())
    assert [f["workers"] for f in report["fused"]] == [1, 2] and report["floor"]["floor_images_per_s"] > 0
    assert report["gflop"]["embedder"] == pytest.approx(0.005067264)


def test_repeats_report_medians_and_each_rounds_ratio_to_its_own_loop():
    from taast_ray.bench.run import merge_rounds

    loops = [{"images_per_s": 50.0, "seconds": 60.0}, {"images_per_s": 40.0}, {"images_per_s": 45.0}]
    loops[1]["seconds"], loops[2]["seconds"] = 75.0, 66.7
    rounds = [[{"actors": 2, "detect_pass_images_per_s": 40.0, "detect_pass_seconds": 75.0, "end_to_end_seconds": 9.0},
               {"actors": 4, "skipped": "x"}],
              [{"actors": 2, "detect_pass_images_per_s": 36.0, "detect_pass_seconds": 83.3}, {"actors": 4, "skipped": "x"}],
              [{"actors": 2, "detect_pass_images_per_s": 45.0, "detect_pass_seconds": 66.7}, {"actors": 4, "skipped": "x"}]]
    merged = merge_rounds(loops, rounds)
    assert merged["repeats"] == 3
    assert merged["plain_loop"]["images_per_s"] == 45.0 and merged["plain_loop"]["seconds"] == 66.7
    two = merged["actors"][0]
    assert two["detect_pass_images_per_s"] == 40.0 and two["detect_pass_images_per_s_runs"] == [40.0, 36.0, 45.0]
    assert two["detect_pass_seconds"] == 75.0
    assert two["ratio_to_plain_loop_runs"] == [0.8, 0.9, 1.0] and two["ratio_to_plain_loop"] == 0.9
    assert two["end_to_end_seconds"] == 9.0  # end to end runs in the first round only
    assert merged["actors"][1] == {"actors": 4, "skipped": "x"}
