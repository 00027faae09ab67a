"""decode.py: every bad or odd image becomes an RGB array or a recorded reason, never a raise."""
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageFile

from taast_ray.bench.pillow_decode import decode_batch
from taast_ray.stages.decode import PAD_GREY, decode_image


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(h=48, w=64, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8))


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that claims width x height but holds a few bytes of pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def assert_rgb(image, h, w):
    assert image is not None and image.dtype == np.uint8 and image.shape == (h, w, 3)


def test_plain_rgb_jpeg_and_png_round_trip(tmp_path):
    im = noise()
    for fmt in ("JPEG", "PNG", "BMP", "TIFF", "WEBP"):
        path = tmp_path / f"x.{fmt.lower()}"
        path.write_bytes(encode(im, fmt))
        image, reason = decode_image(path.read_bytes())
        assert reason is None, fmt
        assert_rgb(image, 48, 64)
    assert np.array_equal(decode_image(encode(im, "PNG"))[0], np.asarray(im))


@pytest.mark.parametrize("data, reason", [
    (None, "missing"), (b"", "empty"), (b"hello, this is a text file\n", "not an image"),
    (bytes(range(256)) * 4, "not an image"),
])
def test_missing_empty_and_non_images(data, reason):
    assert decode_image(data) == (None, reason)


def test_truncated_jpeg_is_an_error(tmp_path):
    data = encode(noise(200, 300), "JPEG")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # the policy depends on Pillow's default
    assert decode_image((tmp_path / "cut.jpg").read_bytes()) == (None, "truncated")


def test_corrupt_png_body():
    data = bytearray(encode(noise(), "PNG"))
    data[200:260] = b"\x00" * 60  # inside the compressed pixel stream
    image, reason = decode_image(bytes(data))
    assert image is None and reason.startswith("corrupt: ")


def test_sixteen_bit_gradient_is_scaled_not_clipped(tmp_path):
    gradient = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    (tmp_path / "g16.png").write_bytes(encode(Image.fromarray(gradient), "PNG"))
    image, reason = decode_image((tmp_path / "g16.png").read_bytes())
    assert reason is None
    assert_rgb(image, 4, 256)
    row = image[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and row[128] in (127, 128)
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 200  # a ramp, not a wall at 255
    assert np.array_equal(image[..., 0], image[..., 2])


def test_32bit_int_and_float_images():
    ints = Image.fromarray((np.arange(100).reshape(10, 10) * 100_000).astype(np.int32))
    floats = Image.fromarray(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10))
    for im in (ints, floats):
        image, reason = decode_image(encode(im, "TIFF"))
        assert reason is None
        assert_rgb(image, 10, 10)
        assert image.min() == 0 and image.max() == 255


def test_cmyk_jpeg_and_grayscale_and_bilevel():
    for im in (noise().convert("CMYK"), noise().convert("L"), noise().convert("1")):
        fmt = "JPEG" if im.mode != "1" else "PNG"
        image, reason = decode_image(encode(im, fmt))
        assert reason is None, im.mode
        assert_rgb(image, 48, 64)
    gray, _ = decode_image(encode(noise().convert("L"), "PNG"))
    assert np.array_equal(gray[..., 0], gray[..., 1])


def test_rgba_is_composited_over_grey():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (255, 0, 0, 255)  # opaque red top half; bottom half fully transparent
    image, reason = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert reason is None
    assert_rgb(image, 8, 8)
    assert tuple(image[0, 0]) == (255, 0, 0) and tuple(image[7, 7]) == PAD_GREY


@pytest.mark.parametrize("transparency", [None, 0])
def test_palette_png_with_and_without_transparency(transparency):
    im = Image.new("P", (6, 5))
    im.putpalette([10, 20, 30] + [200, 100, 50] * 255)
    im.paste(1, (0, 0, 3, 5))
    kw = {} if transparency is None else {"transparency": transparency}
    image, reason = decode_image(encode(im, "PNG", **kw))
    assert reason is None
    assert_rgb(image, 5, 6)
    assert tuple(image[0, 0]) == (200, 100, 50)
    assert tuple(image[0, 5]) == (PAD_GREY if transparency == 0 else (10, 20, 30))


def test_la_image():
    image, reason = decode_image(encode(Image.new("LA", (3, 2), (90, 255)), "PNG"))
    assert reason is None and tuple(image[0, 0]) == (90, 90, 90)


def test_exif_orientation_6_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    (tmp_path / "rot.jpg").write_bytes(encode(noise(40, 100), "JPEG", exif=exif.tobytes()))
    batch = {"image_id": np.array(["rot"], dtype=object),
             "bytes": np.array([(tmp_path / "rot.jpg").read_bytes()], dtype=object)}
    out = decode_batch(batch)
    assert out["image"][0].shape == (100, 40, 3)
    assert (out["width"][0], out["height"][0]) == (40, 100)
    assert out["converted"][0] == "exif-rotated"


def test_small_max_pixels_refuses_from_the_header():
    data = encode(noise(48, 64), "PNG")
    assert decode_image(data, max_pixels=1000) == (None, "too large: 64x48")
    assert decode_image(data, max_pixels=64 * 48)[1] is None


def test_huge_header_is_refused_without_allocating_pixels():
    tracemalloc.start()
    try:
        mid = decode_image(png_header(12_000, 10_000))  # Pillow would only warn: we refuse
        bomb = decode_image(png_header(100_000, 100_000))  # Pillow refuses outright
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mid == (None, "too large: 12000x10000")
    assert bomb[0] is None and bomb[1].startswith("too large")
    assert peak < 20 * 2**20  # 120M RGB pixels would need 360 MB


def test_decode_batch_keeps_upstream_errors_and_uri():
    good = encode(noise(), "PNG")
    batch = {
        "image_id": np.array(["a", "b", "c", "d"], dtype=object),
        "uri": np.array(["/p/a", "/p/b", "/p/c", "/p/d"], dtype=object),
        "bytes": np.array([good, None, b"junk", encode(noise().convert("L"), "PNG")],
                          dtype=object),
        "error": np.array([None, "unreadable: permission denied", None, None], dtype=object),
    }
    out = decode_batch(batch)
    assert list(out["error"]) == [None, "unreadable: permission denied", "not an image", None]
    assert list(out["converted"]) == [None, None, None, "gray->rgb"]
    assert list(out["width"]) == [64, 0, 0, 64] and list(out["uri"]) == list(batch["uri"])
    assert out["image"][1] is None and out["image"][0].shape == (48, 64, 3)
