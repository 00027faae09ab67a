"""Atomic writes leave the old file or nothing, never half a file; output sets are published whole."""
import contextlib
import errno
import os

import pytest

from taast_ray.errors import InputError
from taast_ray.io import atomic_path, is_done, mark_done, write_json


@contextlib.contextmanager
def disk_full_at(monkeypatch, n: int):
    """Test double for a disk that fills up during the n-th atomic write: the file is cut to half
    its size and the write raises ENOSPC, as a real full disk does mid-write."""
    from taast_ray import io

    real, calls = io.atomic_path, [0]

    @contextlib.contextmanager
    def atomic(target):
        calls[0] += 1
        with real(target) as tmp:
            yield tmp
            if calls[0] == n:
                os.truncate(tmp, os.path.getsize(tmp) // 2)
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with monkeypatch.context() as m:
        m.setattr(io, "atomic_path", atomic)
        yield calls


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


def test_uris_stay_uris_and_paths_stay_paths(tmp_path):
    from taast_ray.io import child, is_uri

    assert child("s3://bucket/run/", "detections", "a.parquet") == "s3://bucket/run/detections/a.parquet"
    assert child(tmp_path, "x") == tmp_path / "x"
    assert is_uri("gs://b/k") and is_uri("s3://b") and not is_uri(tmp_path) and not is_uri("file:///tmp/x")


def test_list_parquet_skips_hidden_and_bookkeeping_names(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taast_ray.io import list_parquet

    assert list_parquet(tmp_path / "absent") == []
    for name in ("b.parquet", "sub/a.parquet", ".tmp.parquet", "_SUCCESS.parquet", ".staged/c.parquet", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [1]}), tmp_path / name)
    assert list_parquet(tmp_path) == [str(tmp_path / "b.parquet"), str(tmp_path / "sub" / "a.parquet")]


def test_written_ids_drops_a_half_written_file_so_its_images_run_again(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taast_ray.pipeline.live import not_written, written_ids

    pq.write_table(pa.table({"image_id": ["a", "b"], "boxes": [[], []]}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"image_id": ["c"], "boxes": [[]]}), tmp_path / "two.parquet")
    whole = (tmp_path / "two.parquet").read_bytes()
    (tmp_path / "two.parquet").write_bytes(whole[: len(whole) // 2])  # a write killed mid-file
    assert sorted(written_ids(tmp_path).to_pylist()) == ["a", "b"]
    assert not (tmp_path / "two.parquet").exists()
    listing = pa.table({"image_id": ["a", "b", "c", "d"], "uri": ["1", "2", "3", "4"]})
    assert not_written(listing, tmp_path).column("image_id").to_pylist() == ["c", "d"]
    assert not_written(listing, tmp_path / "nothing-yet").num_rows == 4


def test_written_ids_repairs_files_two_runs_wrote_so_resume_does_not_fail_forever(tmp_path):
    """Before runs were locked, two runs into one folder wrote the same images twice and every
    --resume failed on "duplicate image_id"; now the later file is dropped and its images rerun."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taast_ray.pipeline.live import not_written, written_ids

    pq.write_table(pa.table({"image_id": ["a", "b", "c"]}), tmp_path / "run1_0.parquet")
    pq.write_table(pa.table({"image_id": ["d"]}), tmp_path / "run1_1.parquet")
    pq.write_table(pa.table({"image_id": ["c", "e"]}), tmp_path / "run2_0.parquet")  # c twice
    pq.write_table(pa.table({"image_id": ["f", "f"]}), tmp_path / "run2_1.parquet")  # f twice in itself
    assert sorted(written_ids(tmp_path).to_pylist()) == ["a", "b", "c", "d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1_0.parquet", "run1_1.parquet"]
    listing = pa.table({"image_id": list("abcdef"), "uri": list("123456")})
    assert not_written(listing, tmp_path).column("image_id").to_pylist() == ["e", "f"]


def _set_writers(tag: str) -> dict:
    from taast_ray.io import write_json, write_text

    return {"a.json": lambda p: write_json(p, {"tag": tag}), "b.txt": lambda p: write_text(p, tag * 100),
            "summary.json": lambda p: write_json(p, {"done": tag})}


def test_output_set_is_published_whole_and_checked(tmp_path):
    from taast_ray.io import MANIFEST, STAGING, check_output_set, publish_output_set

    first = publish_output_set(tmp_path, _set_writers("one"))
    assert check_output_set(tmp_path)["set_id"] == first["set_id"]
    assert sorted(first["files"]) == ["a.json", "b.txt", "summary.json"]
    assert not (tmp_path / STAGING).exists()
    (tmp_path / "b.txt").write_text("edited")
    with pytest.raises(InputError, match="differs from manifest.json"):
        check_output_set(tmp_path)
    (tmp_path / MANIFEST).unlink()
    with pytest.raises(InputError, match="no complete output set"):
        check_output_set(tmp_path)


def test_a_failed_write_at_any_point_leaves_the_previous_set(tmp_path, monkeypatch):
    from taast_ray import io
    from taast_ray.errors import StorageError

    io.publish_output_set(tmp_path, _set_writers("old"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for failing in range(1, 5):  # the three files, then the manifest (the commit)
        with disk_full_at(monkeypatch, failing):
            with pytest.raises(StorageError, match="No space left on device.*previous set"):
                io.publish_output_set(tmp_path, _set_writers("new"))
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
        io.check_output_set(tmp_path)


def test_a_failed_first_set_leaves_no_folder_it_made(tmp_path, monkeypatch):
    from taast_ray import io
    from taast_ray.errors import StorageError

    out = tmp_path / "new" / "out"
    with disk_full_at(monkeypatch, 2):
        with pytest.raises(StorageError, match="No space left on device"):
            io.publish_output_set(out, _set_writers("one"))
    assert list(tmp_path.iterdir()) == []
    io.publish_output_set(out, _set_writers("one"))
    io.check_output_set(out)
    (tmp_path / "f").write_text("x")  # OUT under a file: its folders cannot be made
    with pytest.raises(StorageError, match="f/out: could not write the output set"):
        io.publish_output_set(tmp_path / "f" / "out", _set_writers("one"))


def test_a_crash_after_the_commit_is_completed_by_the_next_run(tmp_path, monkeypatch):
    from taast_ray import io
    from taast_ray.errors import StorageError

    io.publish_output_set(tmp_path, {**_set_writers("old"), "old_only.json": lambda p: io.write_json(p, 1)})
    real_move, moves = io._move, []

    def move(src, dst):
        if len(moves) == 2:
            raise OSError(5, "Input/output error")
        moves.append(dst)
        real_move(src, dst)

    monkeypatch.setattr(io, "_move", move)
    with pytest.raises(StorageError, match="interrupted.*completes it"):
        io.publish_output_set(tmp_path, _set_writers("new"))
    with pytest.raises(InputError, match="a run was interrupted or is still writing"):
        io.check_output_set(tmp_path)  # half moved: no reader may take it for a set
    monkeypatch.setattr(io, "_move", real_move)
    assert io.recover_output_set(tmp_path) == "completed"
    io.check_output_set(tmp_path)
    assert io.read_json(tmp_path / "a.json") == {"tag": "new"} and (tmp_path / "b.txt").read_text() == "new" * 100
    assert not (tmp_path / "old_only.json").exists()  # the old set's file the new one lacks


def test_an_uncommitted_staging_folder_is_dropped(tmp_path):
    from taast_ray import io

    io.publish_output_set(tmp_path, _set_writers("old"))
    (tmp_path / io.STAGING).mkdir()
    (tmp_path / io.STAGING / "a.json").write_text("half")
    assert io.recover_output_set(tmp_path) == "dropped"
    assert io.read_json(tmp_path / "a.json") == {"tag": "old"}
    io.check_output_set(tmp_path)


def test_out_naming_a_file_is_one_line(tmp_path):
    from taast_ray.errors import ConfigError
    from taast_ray.io import check_out_dir

    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"--out: .*f is a file, not a folder"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(ConfigError, match="lies under .*f, a file"):
        check_out_dir(tmp_path / "f" / "sub")
    check_out_dir(tmp_path / "new" / "deeper")  # not there yet: fine


def test_new_parents_are_removed_when_the_write_fails(tmp_path):
    from taast_ray.io import atomic_path

    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a" / "b" / "f.json"):
            raise RuntimeError("refused")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a" / "b" / "f.json"):
            raise RuntimeError("refused")
    assert [p.name for p in tmp_path.rglob("*")] == ["a"]  # a was there before: it stays
    with atomic_path(tmp_path / "a" / "b" / "f.json") as tmp:
        tmp.write_text("{}")
    assert (tmp_path / "a" / "b" / "f.json").read_text() == "{}"
