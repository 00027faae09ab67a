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
