"""jpeg.py: header facts read from the markers agree with Pillow; only plain JPEGs take the fast path."""
import io
import struct

import numpy as np
import pytest
from PIL import Image

from taast_ray.stages.jpeg import jpeg_header, plain_jpeg


def jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def rgb(h=48, w=64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8))


def with_app1(data: bytes, payload: bytes) -> bytes:
    """Insert an APP1 segment right after SOI."""
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def big_endian_exif(orientation: int) -> bytes:
    entry = struct.pack(">HHIH2x", 0x0112, 3, 1, orientation)
    return b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + b"\x00" * 4


@pytest.mark.parametrize("im, kw, expected", [
    (rgb(), {}, (64, 48, 3, "baseline")),
    (rgb(37, 91), {"progressive": True}, (91, 37, 3, "progressive")),
    (Image.new("L", (30, 20)), {}, (30, 20, 1, "baseline")),
    (Image.new("CMYK", (30, 20)), {}, (30, 20, 4, "baseline")),
])
def test_frame_header_agrees_with_pillow(im, kw, expected):
    data = jpeg(im, **kw)
    h = jpeg_header(data)
    assert (h.width, h.height, h.components, h.coding) == expected
    assert (h.width, h.height) == Image.open(io.BytesIO(data)).size
    assert h.precision == 8 and h.orientation == 1 and h.complete


def test_orientation_from_exif_either_byte_order_and_from_xmp():
    exif = Image.Exif()
    exif[0x0112] = 6
    assert jpeg_header(jpeg(rgb(), exif=exif)).orientation == 6  # Pillow writes little-endian
    assert jpeg_header(with_app1(jpeg(rgb()), big_endian_exif(3))).orientation == 3
    assert jpeg_header(with_app1(jpeg(rgb()), big_endian_exif(1))).orientation == 1
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta tiff:Orientation=\"8\"/>"
    assert jpeg_header(with_app1(jpeg(rgb()), xmp)).orientation == 0  # Pillow's to decide
    assert jpeg_header(with_app1(jpeg(rgb()), b"Exif\x00\x00XX broken")).orientation == 0


def test_not_jpegs_and_truncation():
    data = jpeg(rgb())
    assert jpeg_header(data[: len(data) // 2]).complete is False
    assert jpeg_header(data + b"\x00\x00").complete  # zero padding after EOI is fine
    png = io.BytesIO()
    rgb().save(png, "PNG")
    for other in (png.getvalue(), b"\xff\xd8", b"\xff\xd8 junk after SOI", b"hello"):
        assert jpeg_header(other) is None


def test_plain_jpeg_is_the_fast_path_rule():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = jpeg(rgb())
    assert plain_jpeg(data, 10_000) and plain_jpeg(jpeg(rgb(), progressive=True), 10_000)
    assert not plain_jpeg(data, 64 * 48 - 1)  # over the pixel limit: Pillow names it
    for odd in (jpeg(Image.new("L", (8, 8))), jpeg(Image.new("CMYK", (8, 8))), jpeg(rgb(), exif=exif),
                data[:-10], b"", None):
        assert not plain_jpeg(odd, 10_000)
