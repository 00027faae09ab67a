"""Batched decode straight to torch tensors on the model's device (SPEC §8), no Ray.

Plain JPEGs (``jpeg.plain_jpeg``) go through ``torchvision.io.decode_jpeg`` as one list: nvJPEG
when the device is CUDA, libjpeg-turbo on the CPU (the same library Pillow uses: equal pixels,
about twice as fast as Pillow plus its RGB copy). Every other record takes the Pillow path of
``decode.py``, with its per-record reasons and mode conversions (SPEC §7); its pixels travel to
the device from pinned memory. A bad record never stops the batch: when the batched call fails,
each of its images is retried alone, and what still fails goes to Pillow for its reason.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from taast_ray.models.transfer import host_to_device
from taast_ray.stages.decode import MAX_PIXELS, decode_image_noted
from taast_ray.stages.jpeg import plain_jpeg


@dataclass
class DecodedBatch:
    """One batch after decoding: an HxWx3 uint8 tensor (or None) per row, with its columns."""
    image_id: list
    uri: list | None
    images: list          # torch.Tensor HxWx3 uint8 on the device, or None where ``error`` is set
    width: np.ndarray     # int32, 0 on failure
    height: np.ndarray
    error: list           # reason or None
    converted: list       # Pillow's conversion note or None
    error_stage: list | None = None  # the step that set ``error``: "read" upstream, else "decode"

    def __post_init__(self):
        if self.error_stage is None:  # built by hand: its errors are its own, decoding's
            self.error_stage = ["decode" if e else None for e in self.error]

    @property
    def ok(self) -> list[int]:
        """Rows whose image decoded, in batch order."""
        return [i for i, image in enumerate(self.images) if image is not None]


def decode_to_tensors(columns: dict, device: torch.device, *, max_pixels: int = MAX_PIXELS) -> DecodedBatch:
    """``columns``: ``image_id``, ``bytes``, optional ``uri`` and upstream ``error`` (kept)."""
    data, n = columns["bytes"], len(columns["image_id"])
    upstream = columns.get("error")
    error = [upstream[i] if upstream is not None and upstream[i] else None for i in range(n)]
    error_stage = _upstream_stages(columns, error)
    images, converted = [None] * n, [None] * n
    plain = [i for i in range(n) if error[i] is None and plain_jpeg(data[i], max_pixels)]
    for i, image in zip(plain, decode_jpegs([data[i] for i in plain], device)):
        images[i] = image
    for i in range(n):
        if images[i] is None and error[i] is None:
            array, error[i], note = decode_image_noted(data[i], max_pixels=max_pixels)
            converted[i], error_stage[i] = note or None, "decode" if error[i] else None
            images[i] = None if array is None else host_to_device(torch.from_numpy(array), device)
    width = np.array([0 if im is None else im.shape[1] for im in images], np.int32)
    height = np.array([0 if im is None else im.shape[0] for im in images], np.int32)
    uri = list(columns["uri"]) if "uri" in columns else None
    return DecodedBatch(list(columns["image_id"]), uri, images, width, height, error, converted, error_stage)


def _upstream_stages(columns: dict, error: list) -> list:
    """The stage of each error set before decoding: as stamped, else the read stage's."""
    stamped = columns.get("error_stage")
    return [None if e is None else (stamped[i] if stamped is not None and stamped[i] else "read")
            for i, e in enumerate(error)]


def decode_jpegs(payloads: list[bytes], device: torch.device) -> list:
    """HxWx3 uint8 tensors on ``device`` (views of decode_jpeg's CHW), None where decoding failed."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not payloads:
        return []
    with warnings.catch_warnings():
        # decode_jpeg never writes to its input (read-only bytes warn), and torchvision 0.29
        # deprecates its decoders in favour of TorchCodec: neither may flood a worker's log
        warnings.simplefilter("ignore")
        tensors = [torch.frombuffer(p, dtype=torch.uint8) for p in payloads]
        try:
            decoded = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # one bad image fails the whole call: find it alone
            decoded = [_decode_one(decode_jpeg, t, device) for t in tensors]
    return [None if im is None else im.permute(1, 2, 0) for im in decoded]


def _decode_one(decode_jpeg, tensor: torch.Tensor, device: torch.device):
    from torchvision.io import ImageReadMode

    try:
        return decode_jpeg(tensor, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return None


def decode_to_pixels(table: pa.Table, *, max_pixels: int = MAX_PIXELS) -> pa.Table:
    """The CPU decode task of ``ray.decode: tasks``: compressed ``bytes`` in, raw pixels out.

    ``pixels`` holds each image's HxWx3 uint8 buffer (null where decoding failed), with
    ``width``, ``height``, ``error`` and ``converted``; ``bytes`` is dropped so that only one
    copy of the image crosses the object store. :func:`pixels_to_decoded` reverses it.
    """
    columns = table.to_pydict()
    decoded = decode_to_tensors(columns, torch.device("cpu"), max_pixels=max_pixels)
    # tobytes() writes C order whatever the strides (decode_jpeg's HWC is a view of CHW): one copy
    pixels = pa.array([None if im is None else im.numpy().tobytes() for im in decoded.images], pa.large_binary())
    kept = [name for name in table.column_names if name not in ("bytes", "error", "error_stage")]
    return table.select(kept).append_column("pixels", pixels).append_column(
        "width", pa.array(decoded.width, pa.int32())).append_column(
        "height", pa.array(decoded.height, pa.int32())).append_column(
        "error", pa.array(decoded.error, pa.string())).append_column(
        "error_stage", pa.array(decoded.error_stage, pa.string())).append_column(
        "converted", pa.array(decoded.converted, pa.string()))


def pixels_to_decoded(columns: dict, device: torch.device) -> DecodedBatch:
    """A batch from :func:`decode_to_pixels` as tensors on ``device``, as decoding it would give."""
    n = len(columns["image_id"])
    width = np.asarray(columns["width"], np.int32)
    height = np.asarray(columns["height"], np.int32)
    images = [None] * n
    for i, buffer in enumerate(columns["pixels"]):
        if buffer is not None:
            array = np.frombuffer(buffer, np.uint8).reshape(int(height[i]), int(width[i]), 3).copy()
            images[i] = host_to_device(torch.from_numpy(array), device)
    uri = list(columns["uri"]) if "uri" in columns else None
    error = list(columns["error"])
    return DecodedBatch(list(columns["image_id"]), uri, images, width, height, error,
                        list(columns["converted"]), _upstream_stages(columns, error))
