"""Resumable stages: run a piece of work unless its completion marker says it finished."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from taast_ray.console import say
from taast_ray.io import is_done, mark_done, read_json


def stage(directory: Path, name: str, resume: bool, work: Callable[[], None], of: dict | None = None) -> None:
    """Run ``work`` unless ``resume`` and ``directory/_markers/<name>.done`` say it finished.

    ``of``: what the work was done on (e.g. ``{"cycle": 3}``), kept in the marker; a marker that
    records something else is stale and the work runs again (a marker from before it recorded
    anything is taken as current)."""
    marker = directory / "_markers" / f"{name}.done"
    if resume and is_done(directory / "_markers", name):
        done_on = read_json(marker) if of else {}
        if all(done_on.get(k, v) == v for k, v in (of or {}).items()):
            say(f"{directory.name}/{name}: done before, skipped")
            return
        say(f"{directory.name}/{name}: done before on {done_on}, now on {of}: again")
    start = time.perf_counter()
    work()
    mark_done(directory / "_markers", name, {"seconds": round(time.perf_counter() - start, 3), **(of or {})})
