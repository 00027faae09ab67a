"""Per-boundary counts of the property-based fuzzers (tests/test_fuzz_boundaries.py): examples run
and seconds taken, printed at the end of the pytest run by tests/conftest.py's terminal summary."""
from __future__ import annotations

import time
from contextlib import contextmanager

# boundary -> {"examples": examples run, "accepted": those that exited 0 (the rest were refused),
# "seconds": wall time of its tests}
STATS: dict[str, dict] = {}


def _entry(boundary: str) -> dict:
    return STATS.setdefault(boundary, {"examples": 0, "accepted": 0, "seconds": 0.0})


def count_example(boundary: str, *, accepted: bool = False) -> None:
    entry = _entry(boundary)
    entry["examples"] += 1
    entry["accepted"] += int(accepted)


@contextmanager
def timed(boundary: str):
    """Add the block's wall time (a whole test: generation, shrinking and examples) to the boundary."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _entry(boundary)["seconds"] += time.perf_counter() - start


def table() -> list[str]:
    """The summary's lines: boundary, examples, seconds, examples that exited 0."""
    if not STATS:
        return []
    width = max(len("boundary"), *(len(b) for b in STATS))
    lines = [f"{'boundary':<{width}}  {'examples':>8}  {'seconds':>7}  {'exit 0':>6}"]
    for boundary, s in STATS.items():
        lines.append(f"{boundary:<{width}}  {s['examples']:>8}  {s['seconds']:>7.1f}  {s['accepted']:>6}")
    total_n, total_s = sum(s["examples"] for s in STATS.values()), sum(s["seconds"] for s in STATS.values())
    lines.append(f"{'total':<{width}}  {total_n:>8}  {total_s:>7.1f}")
    return lines
