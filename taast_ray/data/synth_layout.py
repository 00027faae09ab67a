"""Where the synthetic families put their objects: boxes of drawn sizes that may overlap, but never
hide more than a set share of each other (shared by ``synth`` and ``synth_textures``)."""
from __future__ import annotations

from typing import Callable


Box = tuple[int, int, int, int]


def overlap(a: Box, b: Box) -> float:
    """The share of the smaller box that the other covers."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1)


def place_boxes(rng, n: int, size: int, draw_wh: Callable[[], tuple[int, int]], max_overlap: float) -> list[Box]:
    """``n`` boxes (x0, y0, x1, y1) in a ``size``² image, each of a size ``draw_wh()`` draws, at a
    uniform place, redrawn (up to 30 times) while it hides more than ``max_overlap`` of another or
    another hides that much of it; after 30 misses the last try stands (rare, and a valid box)."""
    boxes: list[Box] = []
    for _ in range(n):
        for _attempt in range(30):
            w, h = draw_wh()
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            box = (x0, y0, x0 + w, y0 + h)
            if all(overlap(box, other) <= max_overlap for other in boxes):
                break
        boxes.append(box)
    return boxes
