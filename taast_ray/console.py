"""What the driver prints: one ``[taast]`` line per step of work, on stdout."""
from __future__ import annotations


def say(message: str) -> None:
    print(f"[taast] {message}", flush=True)
