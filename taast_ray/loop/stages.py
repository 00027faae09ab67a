"""Resumable stages: run a piece of work unless its completion marker says it finished."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from taast_ray.console import say
from taast_ray.io import is_done, mark_done


def stage(directory: Path, name: str, resume: bool, work: Callable[[], None]) -> None:
    """Run ``work`` unless ``resume`` and ``directory/_markers/<name>.done`` say it finished."""
    if resume and is_done(directory / "_markers", name):
        say(f"{directory.name}/{name}: done before, skipped")
        return
    start = time.perf_counter()
    work()
    mark_done(directory / "_markers", name, {"seconds": round(time.perf_counter() - start, 3)})
