"""Parquet files of exactly ``rows_per_file`` rows (the last one of a pass smaller), appended to a folder.

Ray Data's ``write_parquet(min_rows_per_file=N)`` gives files of at least N rows, and adding
``max_rows_per_file`` or a streaming repartition still leaves a short remainder per write task
(measured on Ray 2.60: 61 rows, N = 8 → files of 2, 3, 4, 4, 8, 8, 8, 8, 8, 8). ``--rows-per-file``
promises N per file, the unit of ``--resume``, so one writer holds the rows short of a full file:
``RowsPerFileWriter`` is a plain class (tested in a loop) that the live pass runs as one 0-CPU Ray
actor fed by the pass's batches; the driver flushes it once the pass ends. Each file is written
atomically (``io.write_parquet``), named ``<pass id>_<n>.parquet`` so a resumed pass adds files
beside the earlier ones. A killed pass loses at most the rows of the file being filled; they run
again on ``--resume``.
"""
from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from taast_ray.io import child, write_parquet


class RowsPerFileWriter:
    def __init__(self, folder, rows_per_file: int, pass_id: str | None = None):
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
        self.folder, self.rows_per_file = folder, rows_per_file
        self.pass_id = pass_id or f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.files: list[str] = []

    def add(self, table: pa.Table) -> int:
        """Take a batch; write every full file it completes. Returns the rows still held."""
        if table.num_rows:
            self.pending.append(table)
            self.pending_rows += table.num_rows
        while self.pending_rows >= self.rows_per_file:
            self._write(self.rows_per_file)
        return self.pending_rows

    def flush(self) -> list[str]:
        """Write the remainder (fewer rows than a full file); returns every file written."""
        if self.pending_rows:
            self._write(self.pending_rows)
        return self.files

    def _write(self, rows: int) -> None:
        table = pa.concat_tables(self.pending, promote_options="permissive")
        path = child(self.folder, f"{self.pass_id}_{len(self.files):06d}.parquet")
        write_parquet(path, table.slice(0, rows))
        self.files.append(str(path))
        rest = table.slice(rows)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows


def write_rows_per_file(ds, folder, rows_per_file: int, *, send_tasks: int = 2, progress=None) -> list[str]:
    """Run the Ray dataset ``ds`` to its end, its rows going to files of exactly ``rows_per_file``.

    ``progress`` (console.Progress): advanced by the rows each send reports, on the driver (the
    sends return one tiny row each, so iterating them moves no data)."""
    import ray

    writer = ray.remote(RowsPerFileWriter).options(num_cpus=0).remote(str(folder), rows_per_file)
    try:
        sent = ds.map_batches(_send, fn_kwargs={"writer": writer}, batch_format="pyarrow", num_cpus=0,
                              compute=ray.data.TaskPoolStrategy(size=send_tasks))
        if progress is None:
            sent.materialize()
        else:
            for batch in sent.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0):
                progress.add(int(pa.compute.sum(batch.column("rows")).as_py() or 0))
            progress.finish()
        return ray.get(writer.flush.remote())
    finally:
        ray.kill(writer)


def _send(batch: pa.Table, writer) -> pa.Table:
    import ray

    ray.get(writer.add.remote(batch))  # waits: the writer's pace bounds what is in flight
    return pa.table({"rows": pa.array([batch.num_rows], pa.int64())})
