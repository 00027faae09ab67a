"""report.html in a real headless Chromium (Debian's `chromium`; .ci/run installs it): the page
renders from file://, shows B cards and the class-mix plot, and logs nothing on the console."""
import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taast_ray.cli import main
from tests.factories import detections_table, write_embeddings, write_labels

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium; .ci/run does)")


def _chromium(*args, timeout=120):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", *args], capture_output=True, text=True, timeout=timeout)


def _selection(tmp_path, budget=12):
    table = detections_table(80, 6, seed=4, confident_share=0.2)
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(0)
    uris = []
    for image_id in table.column("image_id").to_pylist():
        path = tmp_path / "img" / f"{image_id}.jpg"
        Image.fromarray((rng.random((120, 160, 3)) * 255).astype("uint8")).save(path)
        uris.append(str(path))
    pq.write_table(table.append_column("uri", pa.array(uris)), tmp_path / "det.parquet")
    labels = write_labels(tmp_path / "labels.json", [40, 20, 8, 3, 1, 0])
    emb = write_embeddings(tmp_path / "emb.parquet", table.column("image_id").to_pylist(), seed=2)
    out = tmp_path / "out"
    assert main(["select", "--detections", str(tmp_path / "det.parquet"), "--embeddings", str(emb),
                 "--labels", str(labels), "--budget", str(budget), "--out", str(out)]) == 0
    return out / "report.html"


def test_the_report_renders_its_cards_and_plot_without_console_errors(tmp_path):
    report = _selection(tmp_path)
    result = _chromium("--dump-dom", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert 'data-rendered="12"' in dom, "the page's script did not run to its end"
    assert "data-error" not in dom
    assert len(re.findall(r'<div class="card[ "]', dom)) == 12
    assert 'id="class-mix"' in dom and len(re.findall(r'<rect class="bar"', dom)) == 2 * 6
    assert "12 of 12 shown" in dom
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert report.stat().st_size < 400_000


def test_chromium_reports_a_broken_page(tmp_path):
    """The check above can fail: a page with a script error shows up on the console lines."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>notDefined();</script></body></html>")
    result = _chromium("--dump-dom", page.as_uri())
    assert any("notDefined is not defined" in line for line in result.stderr.splitlines() if ":CONSOLE" in line)
