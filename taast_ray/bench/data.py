"""Seeded synthetic inputs for the benchmarks: JPEG frames, detections, embeddings, a label file."""
from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image


def frame(index: int, width: int, height: int, seed: int) -> np.ndarray:
    """A fleet-camera-sized frame: 8x8-pixel blocks of noise, shifted per index, ~170 KB as JPEG
    at 1280x720 (real dash-cam frames are 100-300 KB)."""
    rng = np.random.default_rng(seed)
    base = (rng.random((-(-height // 8), -(-width // 8), 3)) * 255).astype(np.uint8)
    return np.roll(base, index, axis=1).repeat(8, 0).repeat(8, 1)[:height, :width]


def jpeg_bytes(index: int, width: int, height: int, seed: int, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame(index, width, height, seed)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def jpeg_payloads(count: int, width: int, height: int, seed: int = 0, distinct: int = 64) -> list[bytes]:
    """``count`` JPEGs in memory, cycling through ``distinct`` encoded frames (encoding is slow)."""
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # Pillow's encoder releases the GIL
        unique = list(pool.map(lambda i: jpeg_bytes(i, width, height, seed), range(min(count, distinct))))
    return [unique[i % len(unique)] for i in range(count)]


def write_jpeg_pool(folder: Path, count: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """A folder pool of ``count`` distinct JPEGs named frame_000000.jpg ..."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(i: int) -> Path:
        path = folder / f"frame_{i:06d}.jpg"
        path.write_bytes(jpeg_bytes(i, width, height, seed))
        return path

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(write, range(count)))


def write_categories(path: Path, classes: int) -> Path:
    """A labelled set with categories only (every class unseen: n_c = 0)."""
    cats = [{"id": k + 1, "name": f"class_{k}", "frequency": "r"} for k in range(classes)]
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    return path


def synthetic_box_rows(n_images: int, classes: int, mean_boxes: float, seed: int):
    """(boxes (m, 4), scores (m, C), offsets (n + 1,)): sigmoid-like score rows, mostly small with
    one peak per box, built without Python lists."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_boxes, n_images)
    n_boxes = int(counts.sum())
    scores = rng.random((n_boxes, classes), dtype=np.float32)
    np.power(scores, 6, out=scores)
    scores *= 0.3
    scores[np.arange(n_boxes), rng.integers(0, classes, n_boxes)] = rng.beta(5, 2, n_boxes)
    boxes = rng.uniform(0, 600, (n_boxes, 4)).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    return boxes, scores, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def synthetic_detections(n_images: int, classes: int, mean_boxes: float, seed: int) -> pa.Table:
    """The detections contract (SPEC.md §3) around :func:`synthetic_box_rows`."""
    boxes, scores, offsets = synthetic_box_rows(n_images, classes, mean_boxes, seed)
    image_offsets = pa.array(offsets.astype(np.int32))

    def nested(values: np.ndarray, width: int) -> pa.Array:
        # int64 inner offsets: 8M boxes × 80 classes is within int32, a larger pool is not
        inner = pa.LargeListArray.from_arrays(pa.array(np.arange(0, values.size + 1, width)),
                                              pa.array(values.reshape(-1)))
        return pa.ListArray.from_arrays(image_offsets, inner)

    ids = pa.array([f"frame_{i:08d}" for i in range(n_images)], pa.string())
    return pa.table({"image_id": ids, "boxes": nested(boxes, 4), "scores": nested(scores, classes)})


def clustered_embeddings(n: int, dim: int, seed: int, centres: int = 1000) -> np.ndarray:
    """Gaussian blobs around ``centres`` random means: k-means has structure to find."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, dim), dtype=np.float32)
    x = means[rng.integers(0, centres, n)]
    x += 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    return x
