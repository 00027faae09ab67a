"""data/images.py: an image's displayed size, from the header."""
import pytest
from PIL import Image

from taast_ray.data.images import image_size
from taast_ray.errors import InputError


def test_the_size_is_read_with_exif_rotation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: width and height swap
    Image.new("RGB", (40, 20)).save(tmp_path / "r.jpg", exif=exif)
    Image.new("RGB", (40, 20)).save(tmp_path / "p.png")
    assert image_size(tmp_path / "r.jpg") == (20, 40) and image_size(tmp_path / "p.png") == (40, 20)


def test_a_file_that_is_no_image_is_one_line_even_after_ultralytics_patched_pillow(tmp_path):
    """Importing Ultralytics replaces PIL.Image.open with a wrapper that, on an unidentified
    file, imports pi_heif (absent here: a ModuleNotFoundError, the last line of defence's exit 70
    in `taast import yolo` once anything had imported Ultralytics). Pillow's own open is used."""
    import ultralytics.utils.patches  # noqa: F401  (patches PIL.Image.open, as any detector load does)

    (tmp_path / "v0.jpg").write_bytes(b"plain text, no image format at all")
    with pytest.raises(InputError, match="v0.jpg: cannot read the image"):
        image_size(tmp_path / "v0.jpg")
