"""sources.py: folder, manifest and cloud-style pools; bytes read with per-record errors."""
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import ray
from PIL import Image

from taast_ray import io as taast_io
from taast_ray.errors import ConfigError, InputError
from taast_ray.stages import sources
from taast_ray.bench.pillow_decode import decode_batch
from taast_ray.stages.sources import list_pool, pool_image_id, read_pool_bytes


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    # Shared with other test modules; never shut down here.
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False)


def save(path, size=(16, 12), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 90).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pool"
    save(root / "b.jpg")
    save(root / "a" / "x.PNG", mode="L")
    save(root / "a" / "deep" / "y.jpeg")
    save(root / "b.png")  # same stem as b.jpg: ids keep the extension
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "labels.json").write_text("{}")
    (root / "corrupt.tif").write_bytes(b"II*\x00garbage")
    save(root / ".cache" / "hidden.jpg")
    (root / "._b.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble sidecar
    return root


def test_folder_listing_ids_uris_and_order(folder):
    ds = list_pool(folder)
    assert ds.schema().names == ["image_id", "uri"]
    listed = ds.take_all()
    ids = [r["image_id"] for r in listed]
    assert ids == ["a/deep/y.jpeg", "a/x.PNG", "b.jpg", "b.png", "corrupt.tif"]  # sorted
    assert all(r["uri"] == str(folder / r["image_id"]) for r in listed)
    assert [r["image_id"] for r in list_pool(str(folder) + "/", limit=2).take_all()] == ids[:2]


def test_folder_bytes_and_decode_end_to_end(folder):
    ds = read_pool_bytes(list_pool(folder)).map_batches(decode_batch, batch_format="numpy")
    out = {r["image_id"]: r for r in ds.take_all()}
    assert out["b.jpg"]["image"].shape == (12, 16, 3) and out["b.jpg"]["error"] is None
    assert out["a/x.PNG"]["converted"] == "gray->rgb"
    assert out["corrupt.tif"]["image"] is None and out["corrupt.tif"]["error"]


def test_manifest_casts_ids_resolves_uris_and_records_missing(tmp_path):
    save(tmp_path / "imgs" / "one.jpg")
    pq.write_table(pa.table({"image_id": [30, 10, 20, 40],
                             "uri": ["imgs/one.jpg", str(tmp_path / "gone.jpg"), None, ""],
                             "extra": [1, 2, 3, 4]}), tmp_path / "m.parquet")
    ds = list_pool(tmp_path / "m.parquet")
    assert [r["image_id"] for r in ds.take_all()] == ["10", "20", "30", "40"]
    got = {r["image_id"]: r for r in read_pool_bytes(ds).take_all()}
    assert got["30"]["uri"] == str(tmp_path / "imgs" / "one.jpg")
    assert got["30"]["bytes"][:2] == b"\xff\xd8" and got["30"]["error"] is None
    for missing in ("10", "20", "40"):
        assert got[missing]["bytes"] is None and got[missing]["error"] == "missing"
        assert got[missing]["error_stage"] == "read"
    assert got["30"]["error_stage"] is None


def test_folder_of_parquet_files_is_one_manifest(tmp_path):
    pq.write_table(pa.table({"image_id": ["b"], "uri": ["/x/b.jpg"]}), tmp_path / "p1.parquet")
    pq.write_table(pa.table({"image_id": ["a"], "uri": ["/x/a.jpg"]}), tmp_path / "p0.parquet")
    assert list_pool(tmp_path).take_all() == [{"image_id": "a", "uri": "/x/a.jpg"},
                                               {"image_id": "b", "uri": "/x/b.jpg"}]


def test_duplicate_ids_name_the_file_and_the_id(tmp_path):
    pq.write_table(pa.table({"image_id": [1, 2, 1], "uri": ["a", "b", "c"]}),
                   tmp_path / "dup.parquet")
    with pytest.raises(InputError, match=r"dup\.parquet: duplicate image_id '1' .*row 0.*row 2"):
        list_pool(tmp_path / "dup.parquet")
    (tmp_path / "dup.parquet").unlink()
    pq.write_table(pa.table({"image_id": ["k"], "uri": ["a"]}), tmp_path / "m0.parquet")
    pq.write_table(pa.table({"image_id": ["k"], "uri": ["b"]}), tmp_path / "m1.parquet")
    with pytest.raises(InputError, match=r"m0\.parquet: duplicate image_id 'k'.*m1\.parquet"):
        list_pool(tmp_path)


def test_bad_manifests(tmp_path):
    pq.write_table(pa.table({"image_id": ["a"]}), tmp_path / "nouri.parquet")
    with pytest.raises(InputError, match=r"nouri\.parquet: manifest lacks column\(s\) uri"):
        list_pool(tmp_path / "nouri.parquet")
    pq.write_table(pa.table({"image_id": ["a", None], "uri": ["x", "y"]}), tmp_path / "n.parquet")
    with pytest.raises(InputError, match=r"n\.parquet: row 1: image_id is null"):
        list_pool(tmp_path / "n.parquet")
    pq.write_table(pa.table({"image_id": ["a", "b", ""], "uri": ["x", "y", "z"]}), tmp_path / "s.parquet")
    with pytest.raises(InputError, match=r"s\.parquet: row 2: image_id is empty$"):
        list_pool(tmp_path / "s.parquet")
    empty = pa.table({"image_id": pa.array([], pa.string()), "uri": pa.array([], pa.string())})
    pq.write_table(empty, tmp_path / "e.parquet")
    with pytest.raises(InputError, match="pool: no images found in"):
        list_pool(tmp_path / "e.parquet")


def test_empty_missing_and_unsupported_pools(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    for pool in (tmp_path / "empty", tmp_path / "texts"):
        with pytest.raises(InputError, match=f"^pool: no images found in {pool}$"):
            list_pool(pool)
    with pytest.raises(InputError, match="does not exist"):
        list_pool(tmp_path / "nowhere")
    with pytest.raises(InputError, match="neither a folder nor a .parquet manifest"):
        list_pool(tmp_path / "texts" / "a.txt")
    with pytest.raises(InputError, match="cannot open"):
        list_pool("nosuchscheme://bucket/prefix")
    with pytest.raises(ConfigError, match="^limit:"):
        list_pool(tmp_path, limit=0)


def test_file_uri_pool_uses_the_uri_code_path(folder):
    ds = list_pool(f"file://{folder}")
    got = {r["image_id"]: r for r in read_pool_bytes(ds).take_all()}
    assert got["a/deep/y.jpeg"]["uri"] == f"file://{folder}/a/deep/y.jpeg"
    assert got["a/deep/y.jpeg"]["bytes"] == (folder / "a/deep/y.jpeg").read_bytes()


def test_bucket_style_listing_and_reading(tmp_path, monkeypatch, folder):
    """A local tree stands in for s3://bucket: listing and reading run the bucket code path."""
    shutil.copytree(folder, tmp_path / "bucket")
    store = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    monkeypatch.setattr(taast_io, "_from_uri", lambda uri: (store, uri.split("://", 1)[1]))
    taast_io._bucket_filesystem.cache_clear()
    listed = list_pool("s3://bucket/a").take_all()
    assert listed == [{"image_id": "deep/y.jpeg", "uri": "s3://bucket/a/deep/y.jpeg"},
                      {"image_id": "x.PNG", "uri": "s3://bucket/a/x.PNG"}]
    table = sources._read_batch(pa.Table.from_pylist(listed + [
        {"image_id": "z", "uri": "s3://bucket/a/nope.jpg"}]))
    assert table["bytes"][1].as_py() == (folder / "a" / "x.PNG").read_bytes()
    assert table["error"].to_pylist() == [None, None, "missing"]
    taast_io._bucket_filesystem.cache_clear()


def test_read_failures_are_reasons_not_raises(tmp_path):
    (tmp_path / "dir.jpg").mkdir()
    table = sources._read_batch(pa.table({"image_id": ["d", "n"],
                                          "uri": [str(tmp_path / "dir.jpg"), None]}))
    assert table["error"].to_pylist() == ["not a file", "missing"]
    assert table["bytes"].null_count == 2


def test_pool_image_id_convention(tmp_path):
    assert pool_image_id(tmp_path / "a" / "b.jpg", tmp_path) == "a/b.jpg"
    assert pool_image_id("s3://bkt/pre/x/y.png", "s3://bkt/pre/") == "x/y.png"
    with pytest.raises(ValueError):
        pool_image_id("/elsewhere/a.jpg", tmp_path)
    assert np.unique([pool_image_id(tmp_path / n, tmp_path) for n in ("a.jpg", "a.png")]).size == 2


def _unreadable(monkeypatch, folder):
    """Test double for a folder this user may not read: as root (the CI container) chmod 000
    changes nothing, so os.scandir refuses that one path the way the kernel would."""
    real = sources.os.scandir

    def scandir(path="."):
        if str(path) == str(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(sources.os, "scandir", scandir)


def test_listing_faults_are_records_not_stops(tmp_path, monkeypatch):
    root = tmp_path / "pool"
    save(root / "ok.jpg")
    save(root / "locked" / "inside.jpg")
    save(root / "real" / "two.jpg")
    (root / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (root / "linked").symlink_to(root / "real")  # symlinked folders are followed, as before
    (root / "loop").symlink_to(root)  # and a loop is walked once
    _unreadable(monkeypatch, root / "locked")
    table = sources.list_pool_table(root)
    ids = table.column("image_id").to_pylist()
    assert ids == ["dangling.jpg", "linked/two.jpg", "locked/", "ok.jpg", "real/two.jpg"]
    reasons = {i: sources.read_one(u)[1] for i, u in zip(ids, table.column("uri").to_pylist())}
    assert reasons["dangling.jpg"] == f"missing: dangling symlink to {tmp_path / 'gone.jpg'}"
    assert reasons["locked/"] == "unreadable: folder, permission denied (its images are not listed)"
    assert reasons["ok.jpg"] is None and reasons["real/two.jpg"] is None


def test_a_pool_of_only_unreadable_folders_is_listed_and_an_unreadable_root_stops(tmp_path, monkeypatch):
    root = tmp_path / "pool"
    save(root / "locked" / "x.jpg")
    _unreadable(monkeypatch, root / "locked")
    assert sources.list_pool_table(root).column("image_id").to_pylist() == ["locked/"]
    _unreadable(monkeypatch, root)
    with pytest.raises(InputError, match="cannot list"):
        sources.list_pool_table(root)


def test_special_files_are_never_opened_and_every_image_name_is_accounted_for(tmp_path):
    """A FIFO, a symlink to /dev/zero and an empty folder named like images are listed, so each is
    a record with its reason (issue 31: they were neither scored nor in errors.parquet), and none
    is opened: reading a FIFO blocks for ever, /dev/zero never ends."""
    root = tmp_path / "pool"
    save(root / "ok.jpg")
    import os

    os.mkfifo(root / "pipe.jpg")
    os.symlink("/dev/zero", root / "zero.png")
    (root / "empty.jpg").mkdir()
    os.mkfifo(root / "notes.txt")  # not named like an image: not the pool's, not listed
    listed = sources.list_pool_table(root)
    assert listed.column("image_id").to_pylist() == ["empty.jpg", "ok.jpg", "pipe.jpg", "zero.png"]
    read = sources._read_batch(listed)
    assert read.column("error").to_pylist() == ["not a file", None, "not a file: a FIFO",
                                                "not a file: a character device"]


def test_a_percent_encoded_file_uri_root_is_found(tmp_path):
    """file:// roots are URIs: %20 is a space (pyarrow's from_uri decoded it; the one resolver does too)."""
    folder = tmp_path / "a b"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "x.png")
    listed = list_pool(f"file://{str(folder).replace(' ', '%20')}").take_all()
    assert [r["image_id"] for r in listed] == ["x.png"]


def test_a_file_name_that_is_not_utf8_is_one_error_row_not_a_stopped_pool(tmp_path):
    import os

    from taast_ray.stages.sources import _read_batch, list_pool_table

    Image.new("RGB", (16, 16)).save(tmp_path / "ok.jpg")
    os.link(tmp_path / "ok.jpg", os.fsencode(str(tmp_path)) + b"/bad\xff.jpg")  # the same image, a bytes name
    listing = list_pool_table(str(tmp_path))
    assert listing.column("image_id").to_pylist() == ["bad\\xff.jpg", "ok.jpg"]
    read = _read_batch(listing)
    assert read.column("error").to_pylist() == ["unreadable: the file name is not UTF-8 (rename the file)", None]
