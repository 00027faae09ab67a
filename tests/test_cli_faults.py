"""Faults a hostile user or a sick machine brings to `taast select` (issue 17): one line, exit 2,
and the output directory holds the previous output set or the complete new one, never a mix."""
import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest

from taast_ray.cli import main
from taast_ray.io import MANIFEST, check_output_set
from taast_ray.lock import run_lock
from tests.factories import one_line, write_detections, write_labels
from tests.test_io import disk_full_at

SET = {"scores.parquet", "selection.parquet", "pseudo_labels.json", "label_studio_tasks.json", "label_config.xml",
       "report.html", "summary.json", "config.yaml", MANIFEST}


@pytest.fixture()
def inputs(tmp_path):
    det = write_detections(tmp_path / "det.parquet", 120, 4, seed=1, confident_share=0.2)
    labels = write_labels(tmp_path / "labels.json", [20, 8, 3, 1])
    return det, labels, tmp_path


def select(det, labels, out, *extra):
    return main([str(a) for a in ("select", "--detections", det, "--labels", labels, "--budget", 6,
                                  "--strategy", "entropy", "--out", out, *extra)])



def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_the_published_set_has_every_file_and_a_manifest(inputs):
    det, labels, tmp = inputs
    assert select(det, labels, tmp / "out") == 0
    assert {p.name for p in (tmp / "out").iterdir()} == SET
    assert set(check_output_set(tmp / "out")["files"]) == SET - {MANIFEST}


def test_out_naming_an_existing_file(inputs, capsys):
    det, labels, tmp = inputs
    (tmp / "taken").write_text("mine")
    assert select(det, labels, tmp / "taken") == 2
    assert "--out:" in one_line(capsys) and (tmp / "taken").read_text() == "mine"


@pytest.mark.parametrize("failing_write", range(1, 10))  # 8 files, then the manifest
def test_a_full_disk_at_any_write_leaves_the_previous_set(inputs, capsys, monkeypatch, failing_write):
    det, labels, tmp = inputs
    out = tmp / "out"
    assert select(det, labels, out, "--seed", 1) == 0
    before, manifest = snapshot(out), check_output_set(out)
    with disk_full_at(monkeypatch, failing_write) as calls:
        assert select(det, labels, out, "--seed", 2, "--strategy", "random") == 2
    assert calls[0] >= failing_write
    assert "No space left on device" in one_line(capsys)
    assert snapshot(out) == before and check_output_set(out)["set_id"] == manifest["set_id"]
    assert select(det, labels, out, "--seed", 2, "--strategy", "random") == 0  # space again: the new set
    assert check_output_set(out)["set_id"] != manifest["set_id"]


def test_a_real_full_disk(inputs, capsys, tmp_path):
    """A 1 MiB tmpfs (root with CAP_SYS_ADMIN only): filled so the second set cannot fit."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        det, labels, _ = inputs
        out = mount / "out"
        assert select(det, labels, out, "--seed", 1) == 0
        before = snapshot(out)
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        size = sum(len(b) for b in before.values())
        (mount / "filler").write_bytes(b"\0" * max(0, free - size // 2))
        assert select(det, labels, out, "--seed", 2, "--strategy", "random") == 2
        assert "No space left on device" in one_line(capsys)
        assert snapshot(out) == before
        check_output_set(out)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_second_run_is_refused_and_the_first_set_stays(inputs, capsys):
    det, labels, tmp = inputs
    out = tmp / "out"
    assert select(det, labels, out) == 0
    before = snapshot(out)
    with run_lock(out):  # a first run still going
        assert select(det, labels, out, "--seed", 9) == 2
        assert f"in use by taast pid {os.getpid()}" in one_line(capsys)
        assert main(["select", "--pool", str(tmp), "--labels", str(labels), "--out", str(out),
                     "--resume"]) == 2  # the live pass too, before anything starts
        one_line(capsys)
    assert snapshot(out) == before
    assert select(det, labels, out, "--seed", 9) == 0


@pytest.mark.parametrize("address, message", [
    ("notahost:abc", "ray.address: the port must be a number 1-65535, not 'abc'"),
    ("ray://head:99999", "ray.address: the port must be"),
    ("ray://head:", "ray.address: the port must be a number 1-65535, not ''"),
])
def test_a_malformed_address_is_one_line_before_any_work(inputs, capsys, address, message):
    det, labels, tmp = inputs
    assert select(det, labels, tmp / "out", "--address", address) == 2
    assert message in one_line(capsys) and not (tmp / "out").exists()


@pytest.mark.parametrize("strategy, message", [
    ("taast-maxrare", "selection.strategy: taast-maxrare was dropped after study (a)"),
    ("nope", "selection.strategy: must be one of taast, entropy"),
])
def test_a_retired_or_unknown_strategy_flag_says_why_before_any_work(inputs, capsys, strategy, message):
    det, labels, tmp = inputs
    assert select(det, labels, tmp / "out", "--strategy", strategy) == 2
    assert message in one_line(capsys) and not (tmp / "out").exists()


def test_the_failure_set_replaces_a_previous_selection(tmp_path):
    """write_failed_outputs: errors + summary + config; an earlier selection.parquet goes with it."""
    from taast_ray.outputs.files import write_failed_outputs
    from taast_ray.error_records import errors_table

    det = write_detections(tmp_path / "det.parquet", 30, 3, seed=2)
    labels = write_labels(tmp_path / "labels.json", [3, 2, 1])
    out = tmp_path / "out"
    assert select(det, labels, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    errors = errors_table([{"image_id": "a.jpg", "uri": "/p/a.jpg", "reason": "missing", "stage": "read"}])
    write_failed_outputs(out, errors, {"status": "failed", "reason": "r", "config": summary["config"]})
    assert {p.name for p in out.iterdir()} == {"errors.parquet", "summary.json", "config.yaml", MANIFEST}
    assert pq.read_table(out / "errors.parquet").column("reason").to_pylist() == ["missing"]
    check_output_set(out)


@pytest.mark.parametrize("argv", [
    ["synth", "--images", "20"], ["demo"],
])
def test_other_commands_refuse_a_file_as_out(tmp_path, capsys, argv):
    (tmp_path / "taken").write_text("mine")
    assert main([*argv, "--out", str(tmp_path / "taken")]) == 2
    assert "is a file, not a folder" in one_line(capsys) and (tmp_path / "taken").read_text() == "mine"


def test_ingest_waits_for_a_running_run(tmp_path, capsys):
    labels = write_labels(tmp_path / "new.json", [1])
    with run_lock(tmp_path / "run"):
        assert main(["ingest", "--labels", str(labels), "--run", str(tmp_path / "run")]) == 2
        assert "in use by taast pid" in one_line(capsys)


def test_a_second_experiment_on_the_same_directory_is_refused(tmp_path, capsys):
    spec = {"name": "locked", "seeds": [1], "strategies": ["random"],
            "base": {"model": {"weights": "yolov8n.yaml", "embedder": "taast-tiny-ViT",
                               "embedder_weights": "none"}}}
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps(spec))  # JSON is YAML
    out = tmp_path / "exp"
    with run_lock(out):  # a first experiment still going
        assert main(["experiment", "--config", str(config), "--out", str(out)]) == 2
        assert "in use by taast pid" in one_line(capsys)
    assert not out.exists()  # nothing written; the lock's own folder went with it


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_published_files_get_the_mode_the_umask_gives(inputs, umask, mode):
    """A teammate, an annotation server or a Ray worker running as another user reads the set as it
    would any file this user made (the temporary-file-then-rename write once kept mkstemp's 0600)."""
    det, labels, tmp = inputs
    old = os.umask(umask)
    try:
        assert select(det, labels, tmp / "out") == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp / "out").iterdir()}
    assert modes == {name: mode for name in SET}


@pytest.mark.parametrize("argv, says", [
    (["nosuch"], "taast: error: argument command: invalid choice: 'nosuch'"),
    (["select", "--budget", "two"], "taast select: error: argument --budget: invalid int value: 'two'"),
    (["run", "--preset", "gpu9"], "taast run: error: argument --preset: invalid choice: 'gpu9'"),
    (["export", "x", "--format", "pascalvoc", "--out", "y"], "taast export: error: argument --format"),
])
def test_a_usage_error_is_one_line_and_a_pointer_to_help(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(says), err
    assert err.rstrip().endswith(f"(see '{says.split(': error')[0]} --help')")
