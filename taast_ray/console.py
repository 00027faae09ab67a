"""What the driver prints: one ``[taast]`` line per step of work on stdout; warnings on stderr."""
from __future__ import annotations

import sys


def say(message: str) -> None:
    print(f"[taast] {message}", flush=True)


def warn(message: str) -> None:
    """A loud line on stderr (a degenerate selection, a weak start model): never silent."""
    print(f"[taast] WARNING: {message}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _rate(per_second: float, unit: str) -> str:
    return f"{per_second:.1f} {unit}/s" if per_second >= 0.1 else f"{per_second * 60:.2f} {unit}/min"


class Progress:
    """Line-based progress on stderr: done/total, the rate and the time left, at most one line
    every ``every_s`` seconds (a log file or CI stays readable), and one line at the end."""

    def __init__(self, what: str, total: int, unit: str = "images", every_s: float = 10.0, clock=None):
        import time

        self.what, self.total, self.unit, self.every_s = what, int(total), unit, every_s
        self.clock = clock or time.monotonic
        self.start = self.last = self.clock()
        self.done = 0
        self.finished = False
        self.first: tuple[float, int] | None = None  # (time, done) at the first report: the rate
        # and time left are measured from there, leaving out start-up (actors, the first batch)

    def add(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        self.done = min(int(done), self.total)
        now = self.clock()
        if self.done >= self.total:
            self.finish()
        elif self.first is None:
            if self.done:
                self.first = (now, self.done)
        elif now - self.last >= self.every_s and self.done > self.first[1]:
            self.last = now
            print(f"[taast] {self.line(now)}", file=sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        now = now if now is not None else self.clock()
        elapsed = max(now - self.start, 1e-9)
        if self.done >= self.total:
            return (f"{self.what}: {self.total} {self.unit} in {_duration(elapsed)} "
                    f"({_rate(self.done / elapsed, self.unit)})")
        t0, d0 = self.first or (self.start, 0)
        rate = (self.done - d0) / max(now - t0, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (f"{self.what}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%), "
                f"{_rate(rate, self.unit)}, {_duration(left) if left != float('inf') else '?'} left")

    def finish(self) -> None:
        if not self.finished and self.total:
            self.finished = True
            print(f"[taast] {self.line()}", file=sys.stderr, flush=True)
