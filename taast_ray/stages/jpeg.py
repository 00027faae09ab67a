"""What a JPEG's header says, read from its markers without decoding a pixel; pure, never raises.

The batched torch decoders (nvJPEG on CUDA, libjpeg-turbo on the CPU) take only the plain case:
8-bit, three components, no orientation to apply, within the pixel limit, ending in an EOI
marker. Everything else (grayscale, CMYK, 12-bit, arithmetic coding, EXIF- or XMP-rotated,
truncated, oversized) goes to Pillow in ``decode.py``, which converts it or names the reason.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_HUFFMAN_FRAMES = {0xC0: False, 0xC1: False, 0xC2: True}  # SOF marker -> progressive
_OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # lossless, arithmetic
_ORIENTATION_TAG = 0x0112
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    components: int
    precision: int
    coding: str          # "baseline", "progressive" or "other" (lossless, arithmetic)
    orientation: int     # EXIF orientation, 1 when absent; 0 when Pillow might find one elsewhere
    complete: bool       # the data ends with an EOI marker (trailing zero padding allowed)


def jpeg_header(data: bytes) -> JpegHeader | None:
    """The frame header and orientation of a JPEG, or None when ``data`` is no readable JPEG."""
    if not data.startswith(_SOI):
        return None
    pos, orientation = 2, 1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and orientation == 1:
            orientation = _exif_orientation(segment[6:])
        elif marker == 0xE1 and segment.startswith(_XMP) and b"tiff:Orientation" in segment:
            orientation = 0  # Pillow also reads XMP orientation: let it decide
        elif marker in _HUFFMAN_FRAMES or marker in _OTHER_FRAMES:
            if len(segment) < 6:
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", segment)
            coding = "other" if marker in _OTHER_FRAMES else (
                "progressive" if _HUFFMAN_FRAMES[marker] else "baseline")
            return JpegHeader(width, height, components, precision, coding, orientation,
                              data.rstrip(b"\x00").endswith(_EOI))
        elif marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0; 0 (ask Pillow) when the block cannot be read."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        ifd = struct.unpack_from(order + "I", tiff, 4)[0]
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHI2s", tiff, ifd + 2 + 12 * i)
            if tag == _ORIENTATION_TAG:
                return struct.unpack(order + "H", value)[0] if kind == 3 else 0
    except (KeyError, struct.error):
        return 0
    return 1


def plain_jpeg(data: bytes | None, max_pixels: int) -> bool:
    """True when a batched torch decoder gives exactly what the Pillow path would, no conversion."""
    header = jpeg_header(data) if data else None
    return (header is not None and header.precision == 8 and header.components == 3
            and header.coding != "other" and header.orientation == 1 and header.complete
            and 0 < header.width * header.height <= max_pixels)
