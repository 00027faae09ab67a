"""tensor_decode.py: torch decoding gives Pillow's pixels, reasons and conversions, batch by batch."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from taast_ray.models.embedder import clip_preprocess
from taast_ray.models.letterbox import as_image_tensors, letterbox_batch
from taast_ray.bench.pillow_decode import decode_batch
import pyarrow as pa

from taast_ray.stages.tensor_decode import decode_jpegs, decode_to_pixels, decode_to_tensors, pixels_to_decoded

CPU = torch.device("cpu")
MEAN, STD = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)


def encode(im: Image.Image, fmt="JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def scene(h, w, seed=0) -> Image.Image:
    """Smooth gradients plus noise: JPEG-like content, not just noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1)
    noise = np.random.default_rng(seed).integers(-20, 20, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def bad_huffman(data: bytes) -> bytes:
    """A JPEG whose header and EOI look fine but whose Huffman table is garbage."""
    i = data.index(b"\xff\xc4")
    return data[:i + 5] + b"\xff" * 20 + data[i + 25:]


@pytest.fixture(scope="module")
def batch():
    exif = Image.Exif()
    exif[0x0112] = 6
    good = [encode(scene(72, 96, s)) for s in range(3)]
    records = {
        "a.jpg": good[0], "b.jpg": encode(scene(90, 60), progressive=True), "c.jpg": good[1],
        "cmyk.jpg": encode(Image.new("CMYK", (70, 50), (0, 50, 100, 0))),
        "gray.jpg": encode(Image.new("L", (40, 30), 90)), "rot.jpg": encode(scene(20, 30), exif=exif),
        "png.png": encode(scene(33, 44), "PNG"), "cut.jpg": good[2][:len(good[2]) // 2],
        "huff.jpg": bad_huffman(good[2]), "empty.jpg": b"", "gone.jpg": None, "late.jpg": good[2],
    }
    return {"image_id": list(records), "bytes": list(records.values()), "uri": [f"/p/{k}" for k in records],
            "error": [None] * (len(records) - 1) + ["missing"]}  # the read stage already failed the last


def test_decode_tasks_hand_the_actor_what_it_would_have_decoded(batch):
    """ray.decode: tasks — CPU task to raw pixels, model actor back to tensors: same batch."""
    table = pa.table({k: pa.array(v, pa.large_binary() if k == "bytes" else pa.string()) for k, v in batch.items()})
    handed = decode_to_pixels(table)
    assert "bytes" not in handed.column_names and handed.num_rows == table.num_rows
    ours, ref = pixels_to_decoded(handed.to_pydict(), CPU), decode_to_tensors(batch, CPU)
    assert (ours.image_id, ours.uri, ours.error, ours.converted) == (ref.image_id, ref.uri, ref.error, ref.converted)
    np.testing.assert_array_equal(ours.width, ref.width)
    np.testing.assert_array_equal(ours.height, ref.height)
    assert ours.ok == ref.ok and len(ref.ok) == 7
    for i in ref.ok:
        assert torch.equal(ours.images[i], ref.images[i].contiguous())


def test_same_outcomes_and_pixels_as_the_pillow_path(batch):
    ours, ref = decode_to_tensors(batch, CPU), decode_batch(batch)
    assert ours.image_id == batch["image_id"] and ours.uri == batch["uri"]
    assert ours.error == list(ref["error"]) and ours.converted == list(ref["converted"])
    np.testing.assert_array_equal(ours.width, ref["width"])
    np.testing.assert_array_equal(ours.height, ref["height"])
    assert all(ours.error[7:11]) and ours.error[11] == "missing" and ours.converted[3:6] == [
        "cmyk->rgb", "gray->rgb", "exif-rotated"]
    assert ours.ok == [i for i, im in enumerate(ref["image"]) if im is not None] == list(range(7))
    for i in ours.ok:
        image = ours.images[i]
        assert image.dtype == torch.uint8 and image.shape == ref["image"][i].shape
        diff = np.abs(image.numpy().astype(int) - ref["image"][i])
        assert diff.max() <= 2 and diff.mean() < 0.05  # both libjpeg-turbo: equal, or nearly


def test_a_failing_image_does_not_fail_its_batch(batch):
    payloads = [batch["bytes"][0], bad_huffman(batch["bytes"][2]), batch["bytes"][2]]
    images = decode_jpegs(payloads, CPU)
    assert images[1] is None and images[0].shape == images[2].shape == (72, 96, 3)
    assert decode_jpegs([], CPU) == []


def test_decoded_views_feed_letterbox_and_clip_crop_like_arrays(batch):
    """decode_jpegs hands over HWC views of CHW tensors (planar on CUDA); the models must see the
    same input as from contiguous arrays."""
    decoded = decode_to_tensors(batch, CPU)
    arrays = [decoded.images[i].numpy().copy() for i in decoded.ok]
    views = [torch.from_numpy(a).permute(2, 0, 1).contiguous().permute(1, 2, 0) for a in arrays]
    assert not views[0].is_contiguous()
    x_view, g_view = letterbox_batch(as_image_tensors(views, CPU), 64)
    x_array, g_array = letterbox_batch(as_image_tensors(arrays, CPU), 64)
    assert g_view == g_array and torch.equal(x_view, x_array)
    assert torch.equal(clip_preprocess(views, 32, MEAN, STD), clip_preprocess(as_image_tensors(arrays, CPU), 32, MEAN, STD))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_and_gpu_preprocessing_close_to_cpu(batch):
    cuda = torch.device("cuda")
    gpu, cpu = decode_to_tensors(batch, cuda), decode_to_tensors(batch, CPU)
    huff = batch["image_id"].index("huff.jpg")  # the hardware decoder may not notice a bad table:
    assert gpu.error[huff] is not None or gpu.images[huff].shape == (72, 96, 3)  # either is fine
    same = [i for i in range(len(batch["image_id"])) if i != huff]
    assert [gpu.error[i] for i in same] == [cpu.error[i] for i in same]
    for i in cpu.ok:
        assert gpu.images[i].device.type == "cuda"
        diff = (gpu.images[i].cpu().int() - cpu.images[i].int()).abs().float()
        assert diff.mean() < 3  # nvJPEG's IDCT and chroma upsampling differ from libjpeg's a little
    views = [gpu.images[i] for i in cpu.ok]
    x_gpu, _ = letterbox_batch(views, 64)
    x_cpu, _ = letterbox_batch([v.cpu() for v in views], 64)
    assert (x_gpu.cpu() - x_cpu).abs().max() <= 1.5 / 255
    crop_gpu = clip_preprocess(views, 32, MEAN, STD).cpu()
    assert (crop_gpu - clip_preprocess([v.cpu() for v in views], 32, MEAN, STD)).abs().max() < 0.05


def test_each_error_carries_the_stage_that_set_it(batch):
    decoded = decode_to_tensors(batch, CPU)
    stages = dict(zip(decoded.image_id, decoded.error_stage))
    assert stages["late.jpg"] == "read"                         # failed upstream, kept as read
    assert {stages[k] for k in ("cut.jpg", "huff.jpg", "empty.jpg", "gone.jpg")} == {"decode"}
    assert all(stages[k] is None for k, e in zip(decoded.image_id, decoded.error) if e is None)
    stamped = {**batch, "error_stage": [None] * (len(batch["image_id"]) - 1) + ["list"]}
    assert decode_to_tensors(stamped, CPU).error_stage[-1] == "list"  # an upstream stamp wins
    handed = pixels_to_decoded(decode_to_pixels(pa.table(batch)).to_pydict(), CPU)
    assert handed.error_stage == decoded.error_stage
