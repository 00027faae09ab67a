"""Image decoding with per-record error capture (SPEC §7); pure functions, no Ray.

Nothing here raises on bad data. A record either decodes to an RGB uint8 HxWx3 array (odd modes
are converted, which is not an error) or yields a short, stable reason for ``errors.parquet``:
"missing", "empty", "not an image", "truncated", "too large: WxH", "corrupt: <detail>".

Decisions:
- Size is checked from the header, before any pixel is decoded; ``max_pixels`` decides, so
  Pillow's bomb warning is silenced (as are its other warnings: outcomes are values here).
  Pillow still refuses, process-wide, anything over 2 x ``Image.MAX_IMAGE_PIXELS`` before the
  size is known: reported as "too large: N pixels".
- Alpha is composited over grey (114, 114, 114), the padding colour of Ultralytics' letterbox,
  so transparent areas look like padding to the detector rather than like black objects.
- EXIF orientation is applied, so boxes are in the displayed orientation.
- ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left as Pillow ships it (False): truncated is an error.
"""
import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps

from taast_ray.data.images import pillow_open

MAX_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS
PAD_GREY = (114, 114, 114)
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_INT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_ORIENTATION = 0x0112


def decode_image(data: bytes | None, *, max_pixels: int = MAX_PIXELS):
    """Return ``(RGB uint8 HxWx3 array, None)`` or ``(None, reason)``; never raises."""
    image, reason, _ = decode_image_noted(data, max_pixels=max_pixels)
    return image, reason


def decode_image_noted(data: bytes | None, *, max_pixels: int = MAX_PIXELS):
    """Like :func:`decode_image`, plus a note of the conversions applied ("" when none)."""
    with warnings.catch_warnings():
        # Pillow warns on corrupt EXIF, bomb-sized headers, palette transparency...: every
        # outcome here is a returned value, and a million-image pool must not flood the log.
        warnings.simplefilter("ignore")
        return _decode(data, max_pixels)


def _decode(data: bytes | None, max_pixels: int):
    if data is None:
        return None, "missing", ""
    if len(data) == 0:
        return None, "empty", ""
    try:
        im = pillow_open()(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        return None, f"too large: {pixels.group(1)} pixels" if pixels else "too large", ""
    except Image.UnidentifiedImageError:
        return None, "not an image", ""
    except Exception as exc:  # noqa: BLE001  (any decoder failure is a per-record reason)
        return None, _failure(exc), ""
    width, height = im.size
    if width * height > max_pixels:
        return None, f"too large: {width}x{height}", ""
    notes: list[str] = []
    try:
        im.load()
        return _to_rgb(_orient(im, notes), notes), None, ",".join(notes)
    except Exception as exc:  # noqa: BLE001
        return None, _failure(exc), ""


def _failure(exc: Exception) -> str:
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    if "truncated" in detail.lower():
        return "truncated"
    return f"corrupt: {detail[:80]}"


def _orient(im: Image.Image, notes: list[str]) -> Image.Image:
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001  (a broken EXIF block does not spoil the pixels)
        return im
    if orientation not in range(2, 9):
        return im
    notes.append("exif-rotated")
    return ImageOps.exif_transpose(im)


def _to_rgb(im: Image.Image, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode in _INT_MODES or mode == "F":
        notes.append("16bit->rgb" if mode in _INT_MODES else "float->rgb")
        gray = _scale_deep(np.asarray(im), mode)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in _ALPHA_MODES or "transparency" in im.info:
        notes.append("alpha->rgb")
        background = Image.new("RGBA", im.size, PAD_GREY + (255,))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    elif mode != "RGB":
        notes.append({"L": "gray", "1": "gray", "P": "palette"}.get(mode, mode.lower()) + "->rgb")
    return np.array(im.convert("RGB"), dtype=np.uint8)  # one writable copy


def _scale_deep(values: np.ndarray, mode: str) -> np.ndarray:
    """Map 16/32-bit integer or float pixels onto 0..255 by scaling, never by clipping."""
    values = values.astype(np.float64)
    if mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = (0.0, 1.0) if values.min() >= 0 and values.max() <= 1 else _span(values)
    elif values.min() >= 0 and values.max() <= 65535:
        low, high = 0.0, 65535.0  # 16-bit data, whether Pillow calls it I;16 or I
    else:
        low, high = _span(values)  # mode I beyond 16 bits: stretch its own range
    scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _span(values: np.ndarray) -> tuple[float, float]:
    return float(values.min()), float(values.max())
