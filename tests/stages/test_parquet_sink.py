"""parquet_sink.py: files of exactly rows_per_file rows, the last one smaller, nothing lost."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taast_ray.io import list_parquet
from taast_ray.stages.parquet_sink import RowsPerFileWriter, write_rows_per_file


def uneven_blocks(n: int = 61):
    table = pa.table({"image_id": [f"{i:03d}" for i in range(n)], "x": list(range(n))})
    cuts = [0, 5, 12, 30, 31, 50, n]  # 5, 7, 18, 1, 19, 11 rows
    return [table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]


def file_rows(folder):
    return [pq.read_metadata(f).num_rows for f in list_parquet(folder)]


def test_plain_loop_writes_exact_files_in_order(tmp_path):
    writer = RowsPerFileWriter(tmp_path, 8, pass_id="p")
    held = [writer.add(b) for b in uneven_blocks()]
    assert held == [5, 4, 6, 7, 2, 5]  # never a full file's worth held back
    files = writer.flush()
    assert [f.rsplit("/", 1)[1] for f in files] == [f"p_{i:06d}.parquet" for i in range(8)]
    assert file_rows(tmp_path) == [8] * 7 + [5]
    assert pq.read_table(tmp_path).column("x").to_pylist() == list(range(61))
    assert RowsPerFileWriter(tmp_path / "none", 8).flush() == []
    with pytest.raises(ValueError):
        RowsPerFileWriter(tmp_path, 0)


def test_through_ray_every_file_but_the_last_is_full(tmp_path, ray_local):
    ds = ray_local.data.from_arrow(uneven_blocks()).map_batches(lambda b: b, batch_format="pyarrow",
                                                                batch_size=3)
    write_rows_per_file(ds, tmp_path / "out", 8)
    rows = file_rows(tmp_path / "out")
    assert sorted(rows) == [5] + [8] * 7  # Ray Data's own writer gave 2, 3, 4, 4, 8, 8, 8, 8, 8, 8
    assert sorted(pq.read_table(tmp_path / "out").column("x").to_pylist()) == list(range(61))
    write_rows_per_file(ds, tmp_path / "out", 8)  # a second pass appends beside the first
    assert len(list_parquet(tmp_path / "out")) == 16
