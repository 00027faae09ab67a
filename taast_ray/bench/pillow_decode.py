"""The Pillow decode of a whole numpy batch: the reference the tensor decode is tested and
benchmarked against (the live pass decodes with :mod:`taast_ray.stages.tensor_decode`)."""
from __future__ import annotations

import numpy as np

from taast_ray.stages.decode import MAX_PIXELS, decode_image_noted


def decode_batch(batch: dict[str, np.ndarray], *, max_pixels: int = MAX_PIXELS) -> dict:
    """Decode a Ray-Data numpy batch (``image_id``, ``bytes``, optional ``uri`` / ``error``).

    Returns ``image_id`` (and ``uri`` when given), ``image`` (object array of HxWx3 uint8 or
    None), ``width``, ``height`` (0 on failure), ``error`` (reason or None) and ``converted``
    (conversion note or None). An ``error`` already set upstream (the read stage) is kept.
    """
    n = len(batch["image_id"])
    upstream = batch.get("error")
    out = {k: np.empty(n, dtype=object) for k in ("image", "error", "converted")}
    width, height = np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int32)
    for i, data in enumerate(batch["bytes"]):
        prior = upstream[i] if upstream is not None else None
        image, reason, note = (None, prior, "") if prior else decode_image_noted(
            data, max_pixels=max_pixels)
        out["image"][i], out["error"][i], out["converted"][i] = image, reason, note or None
        if image is not None:
            height[i], width[i] = image.shape[:2]
    result = {"image_id": batch["image_id"]}
    if "uri" in batch:
        result["uri"] = batch["uri"]
    return {**result, **out, "width": width, "height": height}
