"""Checks that run before Ray starts and before any file is written (issue 17).

A Ray address is parsed (``ray.address``) and probed with one TCP connection, so a typo or an
unreachable head fails in seconds with one line instead of Ray retrying for minutes. The
detector weights are loaded once on the driver (a corrupt ``.pt``, a missing path or an unknown
name fails here, not in every actor 30 s later) and the embedder's architecture and weights are
resolved the same way, whether or not this run will get to embed anything.
"""
from __future__ import annotations

import gc
import os
import socket

from taast_ray.errors import ConfigError

GCS_PORT = 6379          # ray start --head's default
CLIENT_PORT = 10001      # Ray Client (ray://)
PROBE_TIMEOUT_S = 10.0
_KEYWORDS = ("auto", "local")


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` / ``ray://host:port`` / ``[v6]:port``; None for auto/local.

    Raises ValueError with the reason when the text is none of these.
    """
    text = address.strip()
    if text in _KEYWORDS:
        return None
    client = text.startswith("ray://")
    rest = text[len("ray://"):] if client else text
    if not rest or "://" in rest or "/" in rest or any(c.isspace() for c in rest):
        raise ValueError("not an address")
    if rest.startswith("["):  # [::1]:6379
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError("expected [IPv6]:port")
        port_text, has_port = tail[1:], bool(tail)
    elif rest.count(":") > 1:
        raise ValueError("an IPv6 address needs brackets: [addr]:port")
    else:
        host, colon, port_text = rest.partition(":")
        has_port = bool(colon)
    if not host:
        raise ValueError("the host is empty")
    if not has_port:
        return host, CLIENT_PORT if client else GCS_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number 1-65535, not {port_text!r}")
    return host, int(port_text)


def address_syntax_error(address: str | None) -> str | None:
    if not address:
        return None
    try:
        split_address(address)
    except ValueError as exc:
        return str(exc)
    return None


def check_address(address: str | None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail with one line unless something accepts TCP connections at the Ray address."""
    if not address:
        return
    try:
        target = split_address(address)
    except ValueError as exc:
        raise ConfigError(f"ray.address: {exc}; expected host:port, ray://host:port, auto or local, "
                          f"got {address!r}") from None
    if target is None:
        return
    host, port = target
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"ray.address: cannot resolve host {host!r} (from {address!r})") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.timeout:
        raise ConfigError(f"ray.address: no answer from {host}:{port} within {timeout:.0f} s; "
                          f"is the cluster up and the port open to this machine?") from None
    except OSError as exc:
        raise ConfigError(f"ray.address: cannot connect to {host}:{port} ({exc.strerror or exc}); "
                          f"start the cluster or fix --address / RAY_ADDRESS") from None


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
