"""Atomic writes leave the old file or nothing, never half a file."""
import pytest

from taast_ray.io import atomic_path, is_done, mark_done, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_previous(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()


def test_markers(tmp_path):
    assert not is_done(tmp_path, "detect")
    mark_done(tmp_path, "detect", {"rows": 3})
    assert is_done(tmp_path, "detect")
