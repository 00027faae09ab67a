"""The per-image work of a selection pass, without Ray: decode once, detect every image, embed
the candidate share (SPEC §8: "both stages fed from one decode").

Each step is the function the Ray actors call (``decode_to_tensors``, ``Detector.predict_rows``,
``detections_table``, ``Embedder.embed``). The candidates are chosen per batch by φ with every
class unseen (n_c = 0): the live pass chooses them over the whole pool, after all detections are
in, so here the share stands in for them. With ``times`` each step is timed alone (the device
synchronised around it); without, steps of several batches overlap across worker threads, each
on its own CUDA stream.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
import torch

from taast_ray.bench.measure import rate, sync, timer
from taast_ray.models.detector import BoxRows, Detector
from taast_ray.models.embedder import Embedder
from taast_ray.selection.candidates import top_candidates
from taast_ray.selection.scoring import score_images
from taast_ray.stages.decode import MAX_PIXELS
from taast_ray.stages.detect import detections_table
from taast_ray.stages.tensor_decode import decode_to_tensors


@dataclass
class PassModels:
    detector: Detector
    embedder: Embedder
    max_pixels: int = MAX_PIXELS

    @property
    def device(self) -> torch.device:
        return self.detector.device


def batch_candidates(rows: BoxRows, share: float) -> np.ndarray:
    """Indices (into the decoded images) of the top ``share`` by φ, pseudo-labelled ones left out."""
    scored = score_images(rows.scores, rows.offsets, np.zeros(rows.scores.shape[1], np.int64))
    n = len(rows.offsets) - 1
    return top_candidates(scored.value, ~scored.pseudo, np.arange(n), share, 0)


def fused_batch(columns: dict, models: PassModels, share: float, times: dict | None = None):
    """One batch through decode -> detector -> table -> candidates -> embedder.

    Returns (detections table, candidate embeddings); ``times`` accumulates seconds per step.
    """
    step = _timed(times, models.device)
    with step("decode"):
        decoded = decode_to_tensors(columns, models.device, max_pixels=models.max_pixels)
        images = [decoded.images[i] for i in decoded.ok]
    with step("detector"):
        rows = models.detector.predict_rows(images)
    with step("detections_table"):
        table = detections_table(decoded, rows)
    with step("candidates"):
        chosen = batch_candidates(rows, share)
    with step("embedder"):
        embeddings = models.embedder.embed([images[j] for j in chosen])
    return table, embeddings


def _timed(times: dict | None, device: torch.device):
    @contextlib.contextmanager
    def step(name: str):
        if times is None:
            yield
            return
        with timer(device) as elapsed:
            yield
        times[name] = times.get(name, 0.0) + elapsed()
    return step


def batches(image_ids: list, payloads: list, batch_size: int) -> list[dict]:
    return [{"image_id": image_ids[i:i + batch_size], "bytes": payloads[i:i + batch_size]}
            for i in range(0, len(payloads), batch_size)]


def run_fused(work: list[dict], models: PassModels, share: float, *, workers: int = 1) -> dict:
    """Throughput of the fused pass over ``work`` with ``workers`` threads (one CUDA stream each)."""
    queue, lock, totals = iter(work), threading.Lock(), []

    def take():
        with lock:
            return next(queue, None)

    def worker():
        stream = torch.cuda.Stream(models.device) if models.device.type == "cuda" else None
        images = boxes = embedded = 0
        with torch.cuda.stream(stream) if stream else contextlib.nullcontext():
            while (columns := take()) is not None:
                table, z = fused_batch(columns, models, share)
                images += table.num_rows
                boxes += pc.sum(pc.list_value_length(table.column("boxes"))).as_py() or 0
                embedded += len(z)
        totals.append((images, boxes, embedded))

    with timer(models.device) as elapsed:
        if workers == 1:  # in this thread, as run_steps: torch's intra-op threads are per thread
            worker()
        else:
            with ThreadPoolExecutor(workers) as pool:
                for future in [pool.submit(worker) for _ in range(workers)]:
                    future.result()
    images, boxes, embedded = (sum(t[i] for t in totals) for i in range(3))
    return {"workers": workers, "images": images, "seconds": round(elapsed(), 4),
            "images_per_s": round(images / elapsed(), 2), "boxes_per_image": round(boxes / max(images, 1), 2),
            "embedded_share": round(embedded / max(images, 1), 4)}


def run_steps(work: list[dict], models: PassModels, share: float) -> dict:
    """Images/s of each step alone (device synchronised around every step), over ``work``."""
    times: dict = {}
    images = embedded = 0
    for columns in work:
        table, z = fused_batch(columns, models, share, times)
        images, embedded = images + table.num_rows, embedded + len(z)
    share_seen = {"embedder": embedded / max(images, 1)}
    return {name: rate(round(images * share_seen.get(name, 1.0)), seconds, share_seen.get(name, 1.0))
            for name, seconds in times.items()}


def warm_up(work: list[dict], models: PassModels, share: float) -> None:
    """cuDNN's kernel search, the allocator's first blocks, lazy CUDA modules: not in the timings."""
    for columns in work:
        fused_batch(columns, models, share)
    sync(models.device)


def gflop_per_image(models: PassModels, image: np.ndarray) -> dict:
    """Model FLOPs of one image (multiply-add = 2), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as det:
        models.detector.predict_rows([image])
    # nn.MultiheadAttention's eval fast path is one fused op the counter cannot see into; in
    # train mode (no dropout in CLIP towers, no grad here) the same maths runs op by op
    models.embedder.visual.train()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as emb:
            models.embedder.embed([image])
    finally:
        models.embedder.visual.eval()
    return {"detector": det.get_total_flops() / 1e9, "embedder": emb.get_total_flops() / 1e9}


def compute_floor(gflops: dict, share: float, peak_tflops: float, measured: float) -> dict:
    """Images/s if every FLOP ran at ``peak_tflops``: the detector on all, the embedder on ``share``."""
    per_image = gflops["detector"] + share * gflops["embedder"]
    floor = peak_tflops * 1e3 / per_image
    return {"gflop_per_image": round(per_image, 3), "peak_tflops": peak_tflops,
            "floor_images_per_s": round(floor, 1), "fraction_of_floor": round(measured / floor, 4),
            "achieved_tflops": round(measured * per_image / 1e3, 2)}
