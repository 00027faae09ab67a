"""report.html (outputs/report.py): the numbers and the markup, without a browser (see
test_report_chromium.py for the page in a real one)."""
import io
import json
import re

import numpy as np
from PIL import Image

from taast_ray.outputs.report import (ReportCard, images_per_class, render_report, thumbnail,
                                        truth_class_counts)


def test_images_per_class_counts_an_image_once_per_class():
    # image 0: classes 1, 1, 2; image 1: class 2; image 2: no boxes
    owner, cls = np.array([0, 0, 0, 1]), np.array([1, 1, 2, 2])
    assert images_per_class(owner, cls, 3, 4).tolist() == [0, 1, 2, 0]
    assert images_per_class(np.zeros(0), np.zeros(0), 3, 4).tolist() == [0, 0, 0, 0]


def test_truth_matches_by_id_or_by_file_name():
    truth = {"images": [{"id": 7, "file_name": "a/7.jpg"}, {"id": 8, "file_name": "b.jpg"}],
             "annotations": [{"image_id": 7, "category_id": 10}, {"image_id": 7, "category_id": 10},
                             {"image_id": 8, "category_id": 20}]}
    pool, chosen = truth_class_counts(truth, ["7", "b.jpg", "9"], ["a/7.jpg"], np.array([10, 20]))
    assert pool.tolist() == [1, 1] and chosen.tolist() == [1, 0]


def _jpeg(width=64, height=48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def test_thumbnail_is_a_small_jpeg_data_uri_and_garbage_is_none():
    uri, w, h = thumbnail(_jpeg(640, 480))
    assert uri.startswith("data:image/jpeg;base64,") and (w, h) == (640, 480) and len(uri) < 8000
    assert thumbnail(b"not an image") is None


def _card(rank, uri=None, fill=False):
    return ReportCard(rank=rank, image_id=f"img_{rank}", uri=uri, width=64.0, height=48.0,
                      boxes=np.array([[1, 2, 30, 40]], np.float32), box_class=np.array([1]),
                      box_conf=np.array([0.4], np.float32), entropy=0.5, candidate_class="cat", weight=0.9,
                      score=0.45, cluster=rank, fill=fill)


def test_the_page_holds_every_card_the_plot_warnings_and_errors():
    summary = {"strategy": "taast", "seed": 3, "budget": 3, "pool_size": 10, "pseudo_labelled": 4,
               "eligible": 6, "candidates": 3, "selected": 3, "filled": 1, "errors": 2,
               "errors_by_reason": {"dropped_truncated": 2}, "warnings": ["most of the pool <has> no boxes"]}
    cards = [_card(0, "x.jpg"), _card(1, "broken.jpg"), _card(2, None, fill=True)]
    images = {"x.jpg": _jpeg()}

    def read(uri):
        if uri not in images:
            raise OSError("gone")
        return images[uri]

    page = render_report(summary, cards, ["dog", "cat"], (np.array([5, 3]), np.array([1, 3])),
                         (np.array([6, 2]), np.array([2, 1])), read)
    assert page.count('<div class="card"') == 3
    assert page.count("data:image/jpeg;base64,") == 1 and page.count("no image") == 2  # placeholders
    assert 'id="class-mix"' in page and page.count('<svg class="plot"') == 2  # detector + truth
    assert "most of the pool &lt;has&gt; no boxes" in page  # escaped
    assert "<td>truncated</td><td>2</td>" in page
    assert "4 pool images were pseudo-labelled" in page
    assert re.search(r"pool \(10 images\)", page) and "selected (3 images)" in page
    assert json.loads(re.search(r'data-classes="([^"]*)"', page).group(1).replace("&quot;", '"')) == ["cat"]
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch


def test_the_detector_class_mix_read_in_chunks_equals_the_whole_pool(tmp_path):
    """report.html's class mix comes from the box spool in index-block chunks (flat memory):
    the same counts as one pass over every box, with chunk edges inside the pool."""
    import pyarrow.parquet as pq

    from taast_ray.outputs.files import _detector_mix
    from taast_ray.contracts.pool import stream_pool
    from tests.factories import detections_table

    pq.write_table(detections_table(3000, 5, seed=4), tmp_path / "d.parquet", row_group_size=700)
    pool = stream_pool(tmp_path / "d.parquet", 5, 0.8, spool_dir=tmp_path)
    selected = np.zeros(3000, bool)
    selected[np.random.default_rng(0).choice(3000, 40, replace=False)] = True
    owner = np.repeat(np.arange(3000), pool.box_count.astype(np.int64))
    cls = np.asarray(pool.spool.array("cls"), np.int64)
    whole = [np.array([len(set(owner[(cls == k) & m])) for k in range(5)])
             for m in (np.ones(len(owner), bool), selected[owner])]
    for chunk in (1024, 2048, 1 << 18):
        mix = _detector_mix(pool, selected, 5, chunk_images=chunk)
        assert mix[0].tolist() == whole[0].tolist() and mix[1].tolist() == whole[1].tolist()
    pool.close()
