"""What the driver prints: one ``[taast]`` line per step of work on stdout; warnings on stderr."""
from __future__ import annotations

import sys


def say(message: str) -> None:
    print(f"[taast] {message}", flush=True)


def warn(message: str) -> None:
    """A loud line on stderr (a degenerate selection, a weak start model): never silent."""
    print(f"[taast] WARNING: {message}", file=sys.stderr, flush=True)
