"""bench/fused.py: the fused pass runs the actors' functions once per batch; FLOPs and the floor by hand."""
import math
import time

import numpy as np
import pytest

import taast_ray  # noqa: F401  (before Ultralytics)
from taast_ray.bench.data import jpeg_payloads
from taast_ray.bench.fused import (PassModels, batch_candidates, batches, compute_floor, fused_batch,
                                   gflop_per_image, run_fused, run_steps)
from taast_ray.models.detector import BoxRows, Detector
from taast_ray.models.embedder import TINY_MODEL, Embedder

C = 3


@pytest.fixture(scope="module")
def models():
    return PassModels(Detector("yolov8n.yaml", imgsz=64, conf=0.0005, num_classes=C, device="cpu"),
                      Embedder(TINY_MODEL, "none", device="cpu"))


@pytest.fixture(scope="module")
def work():
    payloads = jpeg_payloads(6, 96, 64, distinct=3)
    payloads[3] = b"not a jpeg"
    return batches([f"f{i}" for i in range(6)], payloads, 4)


def test_candidates_are_the_top_share_by_value_without_pseudo_labelled():
    flat = np.full(C, 0.3, np.float32)  # E = ln 3, the largest
    sharp = np.array([0.9, 0.05, 0.05], np.float32)  # confident: a lone box makes its image pseudo
    mid = np.array([0.6, 0.3, 0.1], np.float32)
    # images: 0 one mid box, 1 pseudo, 2 flat + mid, 3 no box, 4 flat
    scores = np.stack([mid, sharp, flat, mid, flat])
    rows = BoxRows(np.zeros((5, 4), np.float32), scores, np.array([0, 1, 2, 4, 4, 5]))
    assert batch_candidates(rows, 0.5).tolist() == [2, 4]  # ⌈0.5 · 4 eligible⌉, highest φ first
    assert batch_candidates(rows, 0.2).tolist() == [2]


def test_fused_batch_decodes_once_and_feeds_both_models(models, work):
    times = {}
    start = time.perf_counter()
    table, z = fused_batch(work[0], models, 0.5, times)
    wall = time.perf_counter() - start
    assert table.column("image_id").to_pylist() == ["f0", "f1", "f2", "f3"]
    assert table.column("error").to_pylist()[3] == "not an image"
    assert z.shape == (2, 32)  # ⌈0.5 · 3 decoded⌉ embedded
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    assert list(times) == ["decode", "detector", "detections_table", "candidates", "embedder"]
    # every step was timed, and the steps' times fit inside the call's own (none counted twice)
    assert all(t > 0 for t in times.values()) and sum(times.values()) <= wall


def test_steps_and_fused_throughput_count_every_image(models, work):
    steps = run_steps(work, models, 0.5)
    assert steps["decode"]["items"] == 6 and steps["embedder"]["items"] == 2 + 1
    embedder = steps["embedder"]  # saw 3 of 6 images: it keeps up with a pool twice its rate
    assert embedder["pool_images_per_s"] == pytest.approx(2 * embedder["items_per_s"], rel=1e-3)
    for workers in (1, 2):
        fused = run_fused(work, models, 0.5, workers=workers)
        assert fused["images"] == 6 and fused["embedded_share"] == 0.5 and fused["images_per_s"] > 0


def test_flops_by_hand_and_the_floor(models):
    gflop = gflop_per_image(models, np.zeros((48, 80, 3), np.uint8))
    # tiny ViT, 64 px, patch 16, width 64, 2 layers, MLP 256, 2 heads, 17 tokens, projection 64 -> 32:
    patches = 16 * (16 * 16 * 3) * 64
    layer = 17 * 64 * 192 + 2 * (2 * 17 * 17 * 32) + 17 * 64 * 64 + 2 * 17 * 64 * 256
    assert gflop["embedder"] * 1e9 == 2 * (patches + 2 * layer + 64 * 32)  # multiply-add = 2 FLOPs
    assert models.embedder.visual.training is False and gflop["detector"] > 0
    # SPEC §8: YOLOv8-s 28.6 GFLOP on all, ViT-L/14 162 GFLOP on 20%, at 800 TFLOP/s
    floor = compute_floor({"detector": 28.6, "embedder": 162.0}, 0.2, 800.0, 2500.0)
    assert floor["gflop_per_image"] == pytest.approx(61.0)
    assert floor["floor_images_per_s"] == pytest.approx(800e3 / 61.0, abs=0.1)
    assert floor["fraction_of_floor"] == pytest.approx(2500 / (800e3 / 61.0), abs=1e-4)
    assert math.isclose(floor["achieved_tflops"], 2500 * 61.0 / 1e3)
