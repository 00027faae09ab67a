"""``report.html``: one self-contained page per selection (issue 16), to look at before annotating.

Inline CSS, JS and SVG, thumbnails as base64 JPEG data URIs: the file opens from disk, a bucket
or a mail attachment, with nothing to fetch. It shows what the selection chose and why: the
class mix of the B selected images against the pool's (the detector's classes, and the ground
truth's where it is known), each selected image with its detector boxes and its breakdown
(E, c(x), w, φ, cluster, rank), how many pool images were pseudo-labelled, errors by reason and
the summary's warnings. Pure: the caller hands it the pass's arrays and an image reader.
"""
from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np

THUMB_PX = 128          # longest side of a thumbnail; B = 256 cards stay around 1 MB
THUMB_QUALITY = 60
MAX_PLOT_CLASSES = 30   # the most frequent classes; the rest are summed as "other"


@dataclass
class ReportCard:
    rank: int
    image_id: str
    uri: str | None
    width: float | None
    height: float | None
    boxes: np.ndarray        # (m, 4) xyxy pixels
    box_class: np.ndarray    # (m,) class index
    box_conf: np.ndarray     # (m,)
    entropy: float
    candidate_class: str | None
    weight: float | None
    score: float | None
    cluster: int | None
    fill: bool


def images_per_class(image_index: np.ndarray, classes: np.ndarray, num_images: int, num_classes: int) -> np.ndarray:
    """(C,) number of images holding ≥ 1 box of each class, from flat (image, class) box rows."""
    if len(classes) == 0:
        return np.zeros(num_classes, np.int64)
    # a sort, not np.unique: numpy 2's hash-based unique of integers ran 4 s per 8M boxes here
    key = np.sort(np.asarray(image_index, np.int64) * num_classes + np.asarray(classes, np.int64))
    first = np.ones(len(key), bool)
    np.not_equal(key[1:], key[:-1], out=first[1:])
    return np.bincount(key[first] % num_classes, minlength=num_classes).astype(np.int64)


def truth_class_counts(truth: dict, pool_ids, selected_ids, category_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth (a COCO dict): images per class among the pool's and the selection's image_ids,
    which match an image's ``id`` (a run's pools) or its ``file_name`` (a folder's relative paths)."""
    index = {int(c): k for k, c in enumerate(category_ids)}
    by_id: dict[str, set] = {}
    for a in truth.get("annotations") or []:  # null is none, as the label check reads it
        k = index.get(int(a["category_id"]))
        if k is not None:
            by_id.setdefault(str(a["image_id"]), set()).add(k)
    per_image = dict(by_id)
    for img in truth.get("images") or []:
        if img.get("file_name") is not None:
            per_image.setdefault(str(img["file_name"]), by_id.get(str(img["id"]), set()))

    def count(ids) -> np.ndarray:
        out = np.zeros(len(category_ids), np.int64)
        for i in ids:
            for k in per_image.get(str(i), ()):
                out[k] += 1
        return out
    return count(pool_ids), count(selected_ids)


def thumbnail(data: bytes) -> tuple[str, int, int] | None:
    """(data URI, width, height) of a small JPEG of the image; None when it cannot be decoded."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            width, height = im.size
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=THUMB_QUALITY, optimize=True)
    except Exception:  # noqa: BLE001  (a corrupt image gets a placeholder, never a failed report)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), width, height


def _colour(k: int) -> str:
    return f"hsl({(k * 137.508) % 360:.0f},80%,50%)"


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def class_mix_svg(names: list[str], series: list[tuple[str, str, np.ndarray, int]], title: str) -> str:
    """Horizontal grouped bars: per class, each series' share of its images holding the class.

    ``series``: (label, css colour, images per class, total images). Classes by the first
    series' count, the top MAX_PLOT_CLASSES, the rest summed as "other"."""
    counts = [np.asarray(s[2], np.int64) for s in series]
    order = np.argsort(-counts[0], kind="stable")
    empty = int((sum(counts) == 0).sum())
    order = order[sum(counts)[order] > 0]  # classes no series holds: counted in the caption only
    shown = order[:MAX_PLOT_CLASSES]
    labels = [names[k] for k in shown]
    rows = [[int(c[k]) for k in shown] for c in counts]
    if len(order) > MAX_PLOT_CLASSES:
        labels.append(f"other ({len(order) - MAX_PLOT_CLASSES} classes)")
        for r, c in zip(rows, counts):
            r.append(int(c[order[MAX_PLOT_CLASSES:]].sum()))
    shares = [[n / max(total, 1) for n in r] for r, (_, _, _, total) in zip(rows, series)]
    top = max([max(s, default=0) for s in shares] + [1e-9])
    bar_h, gap, left, width = 9, 6, 120, 280
    group = bar_h * len(series) + gap
    height = 28 + group * len(labels) + (22 if empty else 10)
    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {left + width + 60} {height}" '
             f'width="{left + width + 60}" height="{height}" role="img" aria-label="{html.escape(title)}">']
    x_legend = left
    for label, colour, _, total in series:
        parts.append(f'<rect x="{x_legend}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x_legend + 14}" y="13" class="legend">{html.escape(label)} ({total} images)</text>')
        x_legend += 170
    for i, name in enumerate(labels):
        y0 = 24 + i * group
        parts.append(f'<text x="{left - 6}" y="{y0 + group / 2}" text-anchor="end" class="cls">{html.escape(name)}</text>')
        for j, (label, colour, _, _) in enumerate(series):
            share = shares[j][i]
            w = width * share / top
            y = y0 + j * bar_h
            parts.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{colour}">'
                         f'<title>{html.escape(name)}, {html.escape(label)}: {rows[j][i]} images '
                         f'({100 * share:.1f}%)</title></rect>'
                         f'<text x="{left + w + 3:.1f}" y="{y + bar_h - 1}" class="val">{100 * share:.0f}%</text>')
    if empty:
        parts.append(f'<text x="{left}" y="{height - 6}" class="legend">{empty} classes in no image of either '
                     f'are left out</text>')
    parts.append("</svg>")
    return "".join(parts)


def card_html(card: ReportCard, names: list[str], image: tuple[str, int, int] | None) -> str:
    if image is not None:
        uri, width, height = image
    else:
        uri, width, height = None, card.width or 160, card.height or 120
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" class="thumb">']
    svg.append(f'<image href="{uri}" x="0" y="0" width="{width:g}" height="{height:g}"/>' if uri else
               f'<rect width="{width:g}" height="{height:g}" fill="#ddd"/><text x="4" y="14" class="na">no image</text>')
    stroke = max(width, height) / 100
    for box, k, conf in zip(card.boxes, card.box_class, card.box_conf):
        x1, y1, x2, y2 = (float(v) for v in box)
        svg.append(f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{max(x2 - x1, 0):.1f}" height="{max(y2 - y1, 0):.1f}" '
                   f'fill="none" stroke="{_colour(int(k))}" stroke-width="{stroke:.2f}">'
                   f'<title>{html.escape(names[int(k)])} {float(conf):.2f}</title></rect>')
    svg.append("</svg>")
    classes = sorted({names[int(k)] for k in card.box_class})
    rows = [("rank", card.rank), ("E(x)", _num(float(card.entropy))), ("c(x)", card.candidate_class or "—"),
            ("w", _num(card.weight)), ("φ / score", _num(card.score)), ("cluster", _num(card.cluster)),
            ("boxes", len(card.boxes))]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    fill = ' <span class="fill">filled</span>' if card.fill else ""
    return (f'<div class="card" data-classes="{html.escape(json.dumps(classes))}">{"".join(svg)}'
            f'<div class="id" title="{html.escape(card.uri or card.image_id)}">{html.escape(card.image_id)}{fill}</div>'
            f'<table>{table}</table></div>')


_CSS = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}
.facts{display:flex;flex-wrap:wrap;gap:6px 18px;margin:8px 0}.facts b{font-weight:600}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin:6px 0;border-radius:4px}
.plots{display:flex;flex-wrap:wrap;gap:24px}.plot text{font-size:10px;fill:#333}.plot .cls{font-size:10px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:10px}
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:6px}
.card.hidden{display:none}.thumb{width:100%;height:auto;display:block;background:#eee}
.card table{width:100%;border-collapse:collapse;font-size:11px}.card th{text-align:left;font-weight:500;color:#666}
.card td{text-align:right}.id{font-size:11px;word-break:break-all;margin:3px 0}.fill{color:#a60}
table.errors td,table.errors th{padding:2px 8px;text-align:left}
"""

_JS = """
(function(){
  window.addEventListener('error', function(e){ document.body.dataset.error = String(e.message); });
  var cards = Array.prototype.slice.call(document.querySelectorAll('.card'));
  var pick = document.getElementById('class-filter'), shown = document.getElementById('shown');
  function apply(){
    var want = pick.value, n = 0;
    cards.forEach(function(c){
      var ok = !want || JSON.parse(c.dataset.classes).indexOf(want) >= 0;
      c.classList.toggle('hidden', !ok); if (ok) n++;
    });
    shown.textContent = n + ' of ' + cards.length + ' shown';
  }
  pick.addEventListener('change', apply);
  apply();
  document.body.dataset.rendered = String(cards.length);
})();
"""


def render_report(summary: dict, cards: list[ReportCard], names: list[str], detector_mix: tuple[np.ndarray, np.ndarray],
                  truth_mix: tuple[np.ndarray, np.ndarray] | None, read_image: Callable[[str], bytes] | None) -> str:
    """The page. ``detector_mix`` / ``truth_mix``: (pool, selected) images per class."""
    pool_n, sel_n = int(summary.get("pool_size", 0)), len(cards)
    plots = [class_mix_svg(names, [("pool", "#9aa5b1", detector_mix[0], pool_n),
                                   ("selected", "#1f6feb", detector_mix[1], sel_n)],
                           "detected classes: share of images holding each class")]
    titles = ["<h3>detector's classes (boxes kept by NMS)</h3>"]
    if truth_mix is not None:
        plots.append(class_mix_svg(names, [("pool", "#b7a08a", truth_mix[0], pool_n),
                                           ("selected", "#d9480f", truth_mix[1], sel_n)],
                                   "ground-truth classes: share of images holding each class"))
        titles.append("<h3>ground truth (known in simulation)</h3>")
    facts = [("strategy", summary.get("strategy")), ("seed", summary.get("seed")), ("budget B", summary.get("budget")),
             ("pool", pool_n), ("pseudo-labelled", summary.get("pseudo_labelled")),
             ("eligible", summary.get("eligible")), ("candidates", summary.get("candidates")),
             ("selected", summary.get("selected")), ("filled", summary.get("filled")),
             ("boxes", summary.get("boxes")), ("τ", summary.get("tau")), ("errors", summary.get("errors", 0))]
    errors = summary.get("errors_by_reason") or {}
    error_rows = "".join(f"<tr><td>{html.escape(str(r).removeprefix('dropped_'))}</td><td>{int(n)}</td></tr>"
                         for r, n in sorted(errors.items(), key=lambda kv: -kv[1]))
    present = sorted({c for card in cards for c in (names[int(k)] for k in card.box_class)})
    options = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in present)
    body = [
        f"<h1>taast-ray selection: {sel_n} of {pool_n} images</h1>",
        '<div class="facts">' + "".join(f"<span>{html.escape(k)} <b>{html.escape(_num(v))}</b></span>"
                                        for k, v in facts) + "</div>",
        "".join(f'<div class="warn">⚠ {html.escape(w)}</div>' for w in summary.get("warnings", [])),
        f"<p>{int(summary.get('pseudo_labelled') or 0)} pool images were pseudo-labelled (every box ≥ τ) "
        f"and left out of the ranking; they train as P.</p>",
        '<h2>class mix: selected against the pool</h2><div class="plots" id="class-mix">'
        + "".join(f"<div>{t}{p}</div>" for t, p in zip(titles, plots)) + "</div>",
        "<h2>errors by reason</h2>" + (f'<table class="errors"><tr><th>reason</th><th>images</th></tr>{error_rows}</table>'
                                       if error_rows else "<p>none: every pool image was read.</p>"),
        f'<h2>the {sel_n} selected images, in rank order</h2>'
        f'<p>boxes: the detector\'s; filter by a detected class <select id="class-filter"><option value="">'
        f'all classes</option>{options}</select> <span id="shown"></span></p>',
        '<div class="cards">' + "".join(card_html(c, names, _thumb(c, read_image)) for c in cards) + "</div>",
    ]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>taast-ray selection report</title><style>{_CSS}</style></head><body>"
            + "".join(body) + f"<script>{_JS}</script></body></html>\n")


def _thumb(card: ReportCard, read_image) -> tuple[str, int, int] | None:
    if read_image is None or not card.uri:
        return None
    try:
        data = read_image(card.uri)
    except Exception:  # noqa: BLE001  (unreadable now: a placeholder, the selection still stands)
        return None
    return thumbnail(data)
