"""The ``errors.parquet`` contract: one row per pool record that could not be used.

    image_id  string
    uri       string (null where unknown)
    stage     string: the step that set the record aside ("list", "read", "decode", ...)
    reason    string: a short stable code, optionally ": " and a detail ("corrupt: ...")

Each step stamps ``stage`` and ``reason`` on its own records as it sets them aside (the pool's
columns ``error_stage`` and ``error``); nothing downstream guesses a stage from a reason's text.
The summary counts them by reason code as ``dropped_<code>`` (datatrove's convention).
"""
from __future__ import annotations

from collections import Counter

import pyarrow as pa

ERRORS_SCHEMA = pa.schema([("image_id", pa.string()), ("uri", pa.string()),
                           ("stage", pa.string()), ("reason", pa.string())])


def errors_table(rows, *, stage: str = "decode") -> pa.Table:
    """Rows (mappings) with a reason, as the ``errors.parquet`` table.

    Each row needs ``image_id`` and ``reason`` (or ``error``, as the pool's columns name it);
    ``uri`` and ``stage`` (or ``error_stage``) are optional, ``stage`` defaulting to the argument.
    Rows without a reason are skipped, so processed rows can be passed straight through.
    """
    cols: dict[str, list] = {name: [] for name in ERRORS_SCHEMA.names}
    for row in rows:
        reason = row.get("reason", row.get("error"))
        if reason is None:
            continue
        cols["image_id"].append(str(row["image_id"]))
        cols["uri"].append(None if row.get("uri") is None else str(row["uri"]))
        cols["stage"].append(str(row.get("stage") or row.get("error_stage") or stage))
        cols["reason"].append(str(reason))
    return pa.table(cols, schema=ERRORS_SCHEMA)


def reason_code(reason: str) -> str:
    """The code of a reason: ``"corrupt: bad Huffman table"`` → ``"corrupt"``."""
    return reason.split(":", 1)[0].strip()


def count_by_reason(errors: pa.Table) -> dict[str, int]:
    """``{"dropped_<code>": n}`` over the table's reasons, codes with spaces as underscores."""
    counts = Counter(reason_code(r).replace(" ", "_") for r in errors.column("reason").to_pylist())
    return {f"dropped_{code}": n for code, n in sorted(counts.items())}


def count_by_stage(errors: pa.Table) -> dict[str, int]:
    return dict(sorted(Counter(errors.column("stage").to_pylist()).items()))
