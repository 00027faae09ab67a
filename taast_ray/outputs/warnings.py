"""Degenerate selections, said out loud (issue 16): the summary's ``warnings`` list.

A detector that finds nothing makes every E(x) and φ zero, and a ranking of equal values is
decided by its tie-break alone. The selection is still valid (ties go by a seeded hash of
image_id, never the file-name order), but it is no better than random, and a user must be told.
"""
from __future__ import annotations

import numpy as np

from taast_ray.selection import registry

NO_BOX_SHARE = 0.5  # more than half of the pool without a single box: loud


def selection_warnings(box_count: np.ndarray, value: np.ndarray, eligible: np.ndarray,
                       strategy: str, seed: int) -> list[str]:
    """One sentence per degenerate condition: most of the pool without boxes; every eligible
    image with the same ranking value. ``value``: the strategy's ranking value per image, named as
    its registry record names it; a strategy that ranks by something else (random's seeded key,
    core-set's distances) has no such name and is not judged here."""
    out = []
    n = len(box_count)
    empty = int(np.count_nonzero(np.asarray(box_count) == 0))
    tie_break = f"ties are broken by a seeded hash of image_id (selection.seed {seed}), not by file name"
    if n and empty / n > NO_BOX_SHARE:
        out.append(f"the detector found no boxes on {empty} of {n} pool images ({empty / n:.0%}): "
                   f"their E(x) and φ(x) are 0 and cannot be ranked; {tie_break}. Check model.weights "
                   f"(a random-init model finds nothing) and selection.det_conf")
    name = registry.strategy(strategy).value_label
    if name is not None:
        v = np.asarray(value, dtype=np.float64)[np.asarray(eligible, bool)]
        v = v[np.isfinite(v)]
        if len(v) > 1 and v.min() == v.max():
            out.append(f"every one of the {len(v)} eligible images has the same {name} ({v[0]:g}): "
                       f"the selection is decided by the tie-break alone, as good as random; {tie_break}")
    return out
