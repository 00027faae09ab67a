"""The errors.parquet contract: schema, stage stamps, counts by reason code."""
import pyarrow as pa

from taast_ray.error_records import count_by_reason, count_by_stage, errors_table, reason_code


def test_errors_table_schema_and_skipping():
    rows = [{"image_id": 7, "uri": "/p/7.jpg", "error": "truncated"},
            {"image_id": "ok", "error": None},
            {"image_id": "m", "reason": "missing", "stage": "read"}]
    table = errors_table(rows)
    assert table.schema == pa.schema([("image_id", pa.string()), ("uri", pa.string()),
                                      ("stage", pa.string()), ("reason", pa.string())])
    assert table.to_pylist() == [
        {"image_id": "7", "uri": "/p/7.jpg", "stage": "decode", "reason": "truncated"},
        {"image_id": "m", "uri": None, "stage": "read", "reason": "missing"}]
    assert errors_table([]).num_rows == 0


def test_stage_stamped_by_the_step_wins_over_the_default():
    table = errors_table([{"image_id": "a", "error": "missing", "error_stage": "read"},
                          {"image_id": "b", "error": "corrupt: bad marker"}])
    assert table.column("stage").to_pylist() == ["read", "decode"]


def test_counts_by_reason_code_and_stage():
    table = errors_table([{"image_id": "a", "reason": "corrupt: bad Huffman table"},
                          {"image_id": "b", "reason": "corrupt: truncated"},
                          {"image_id": "c", "reason": "not a file", "stage": "read"},
                          {"image_id": "d", "reason": "too large: 90000x90000"}])
    assert reason_code("corrupt: x: y") == "corrupt" and reason_code("missing") == "missing"
    assert count_by_reason(table) == {"dropped_corrupt": 2, "dropped_not_a_file": 1, "dropped_too_large": 1}
    assert count_by_stage(table) == {"decode": 3, "read": 1}
    assert count_by_reason(errors_table([])) == {}
