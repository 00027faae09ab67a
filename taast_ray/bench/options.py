"""Command-line options shared by ``taast bench`` and ``benchmarks/gpu_pass.py``; no Ray here."""
from __future__ import annotations

import argparse

from taast_ray.errors import ConfigError

CPU_DEFAULTS = {"size": "1280x720", "batch_size": 16, "weights": "yolov8n.yaml", "imgsz": 320,
                "embedder": "ViT-B-32", "workers": "1"}
GPU_DEFAULTS = {"size": "1280x720", "batch_size": 256, "weights": "yolov8s.yaml", "imgsz": 640,
                "embedder": "ViT-L-14-quickgelu", "workers": "1,2"}


def add_pass_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """Pool frames, models and batching of the per-image pass."""
    parser.add_argument("--size", default=defaults["size"], help="JPEG resolution WxH (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"],
                        help="images per batch (default %(default)s)")
    parser.add_argument("--weights", default=defaults["weights"],
                        help="detector: Ultralytics weights or a model YAML for random init (default %(default)s)")
    parser.add_argument("--imgsz", type=int, default=defaults["imgsz"], help="detector input (default %(default)s)")
    parser.add_argument("--classes", type=int, default=80, help="detector classes C (default 80)")
    parser.add_argument("--det-conf", type=float, default=0.25,
                        help="detector confidence threshold (default 0.25); random weights keep ~no box there")
    parser.add_argument("--embedder", default=defaults["embedder"],
                        help="open_clip architecture (default %(default)s)")
    parser.add_argument("--embedder-weights", default="none",
                        help="open_clip tag or file; none = random init, same FLOPs (default none)")
    parser.add_argument("--share", type=float, default=0.2, help="candidate share q embedded (default 0.2)")
    parser.add_argument("--device", default="auto", help="torch device for the models (default auto)")
    parser.add_argument("--workers", default=defaults["workers"],
                        help="threads of the fused pass, comma-separated to try several (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)


def load_models(args: argparse.Namespace):
    """The detector and embedder the actors would load, from parsed pass arguments."""
    from taast_ray.bench.fused import PassModels
    from taast_ray.models.detector import Detector
    from taast_ray.models.embedder import Embedder

    return PassModels(Detector(args.weights, imgsz=args.imgsz, conf=args.det_conf, device=args.device,
                               num_classes=args.classes),
                      Embedder(args.embedder, args.embedder_weights, device=args.device))


def frame_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size: {text!r} is not WIDTHxHEIGHT") from None
    if width < 8 or height < 8:
        raise ConfigError(f"--size: {text!r} is smaller than 8x8")
    return width, height


def int_list(text: str, field: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4], each at least 1."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{field}: {text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{field}: {text!r} needs integers >= 1")
    return values
