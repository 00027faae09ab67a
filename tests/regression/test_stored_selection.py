"""Stored outputs (open_clip's habit): a seeded ``taast select --detections`` on a small committed
case must write exactly the committed ``selection.parquet`` and ``scores.parquet``, so a change
of ranking, tie-breaking, k-means or ordering cannot pass unnoticed. Regenerate deliberately
with ``python -m tests.regression.make_case`` and say why in the commit."""
import pyarrow.parquet as pq
import pytest

from tests.regression.make_case import CASE, STRATEGIES, select


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_selection_equals_the_stored_output(strategy, tmp_path):
    assert select(CASE, strategy, tmp_path / "out") == 0
    for name in ("selection.parquet", "scores.parquet"):
        ours, stored = pq.read_table(tmp_path / "out" / name), pq.read_table(CASE / strategy / name)
        assert ours.schema == stored.schema, name
        for column in stored.column_names:
            assert ours.column(column).to_pylist() == stored.column(column).to_pylist(), f"{name}:{column}"
