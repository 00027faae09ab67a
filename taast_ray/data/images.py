"""Image facts the label formats need: the displayed size (EXIF orientation applied)."""
from __future__ import annotations

import sys
from pathlib import Path

from taast_ray.errors import InputError

_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as the image is shown and trained on, reading the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with pillow_open()(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Image.DecompressionBombError as exc:  # a header claiming more pixels than Pillow will decode
        raise InputError(f"{path}: the image is too large to decode ({' '.join(str(exc).split())[:80]})") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: cannot read the image ({' '.join(str(exc).split())[:80]})") from None
    return (height, width) if orientation in _ROTATED else (width, height)


def pillow_open():
    """Pillow's own ``Image.open``. Importing Ultralytics replaces it with a wrapper that, on an
    unidentified file, tries to install and register a HEIF plugin (a ModuleNotFoundError offline):
    an undecodable file must stay "not an image", and never trigger an install."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open) if patches else Image.open
