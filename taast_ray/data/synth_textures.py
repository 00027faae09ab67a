"""The ``textures`` family of the synthetic set (``taast synth --family textures``): classes that
colour cannot tell apart.

A class is an (interior texture, outline shape) pair. Every object draws its two colours — the
pattern and the ground it lies on — from one shared palette at random, independently of its class,
so colour says nothing about the class; texture and outline do. Compared with the ``shapes`` family
objects come at a wider range of scales (SIZE_RANGE, log-uniform), overlap more (MAX_OVERLAP), are
sometimes partly covered by clutter patches (their boxes stay the full object extent), and lie on
grey backgrounds strewn with palette-coloured strokes, lines and blobs that belong to no class.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from taast_ray.data.synth_layout import place_boxes

TEXTURES = ("stripe", "dots", "check", "rings", "hatch", "solid")
SHAPES = ("square", "circle", "triangle", "hexagon", "diamond", "cross", "star", "arrow")
PALETTE = ((225, 30, 30), (30, 190, 40), (35, 60, 235), (245, 225, 30), (225, 40, 225),
           (30, 215, 225), (250, 140, 20), (15, 15, 15), (245, 245, 245))
SIZE_RANGE = (0.08, 0.5)   # object side as a share of the image side, drawn log-uniform
MAX_OVERLAP = 0.5          # at most this share of the smaller box may be hidden by another object
OCCLUDED_SHARE = 0.5       # share of images with objects that get 1–2 clutter patches over them


def class_names(classes: int) -> list[str]:
    """Unique ``texture_shape`` pairs; consecutive classes differ in both texture and shape."""
    n = len(TEXTURES)
    # the shape steps n + 1 = 7 per cycle of textures, coprime with 8 shapes → all 48 pairs unique
    return [f"{TEXTURES[k % n]}_{SHAPES[(k + k // n) % len(SHAPES)]}" for k in range(classes)]


def _unit_polygon(shape: str) -> np.ndarray | None:
    """Vertices in [0, 1]², touching all four sides (so the box is the object's extent)."""
    if shape == "square":
        return np.array([(0, 0), (1, 0), (1, 1), (0, 1)], float)
    if shape == "triangle":
        return np.array([(0.5, 0), (1, 1), (0, 1)], float)
    if shape == "diamond":
        return np.array([(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)], float)
    if shape == "cross":
        a, b = 1 / 3, 2 / 3
        return np.array([(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b),
                         (0, b), (0, a), (a, a)], float)
    if shape == "arrow":
        return np.array([(0, 0.32), (0.55, 0.32), (0.55, 0), (1, 0.5), (0.55, 1), (0.55, 0.68),
                         (0, 0.68)], float)
    if shape in ("hexagon", "star"):
        k = 6 if shape == "hexagon" else 10
        angles = np.arange(k) * 2 * np.pi / k - np.pi / 2
        radii = np.ones(k) if shape == "hexagon" else np.where(np.arange(k) % 2, 0.45, 1.0)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        return (pts - pts.min(0)) / (pts.max(0) - pts.min(0))
    return None  # circle


def _shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    poly = _unit_polygon(shape)
    if poly is None:
        draw.ellipse((0, 0, w - 1, h - 1), fill=255)
    else:
        draw.polygon([tuple(p) for p in (poly * (w - 1, h - 1)).tolist()], fill=255)
    return np.asarray(mask) > 0


def _pattern(rng, texture: str, w: int, h: int) -> np.ndarray:
    """True where the pattern colour goes; the period scales with the object (≥ 4 px)."""
    period = max(4.0, min(w, h) * rng.uniform(0.2, 0.3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx += rng.uniform(0, period)
    yy += rng.uniform(0, period)
    if texture == "stripe":  # diagonal stripes, half and half
        angle = np.deg2rad(rng.uniform(30, 60))
        return (xx * np.cos(angle) + yy * np.sin(angle)) % period < period / 2
    if texture == "dots":
        dx, dy = xx % period - period / 2, yy % period - period / 2
        return dx * dx + dy * dy < (0.32 * period) ** 2
    if texture == "check":
        cell = period / 2
        return ((xx // cell + yy // cell) % 2).astype(bool)
    if texture == "rings":  # concentric about the box centre
        r = np.hypot(np.arange(h)[:, None] - (h - 1) / 2, np.arange(w)[None, :] - (w - 1) / 2)
        return r % period < period / 2
    if texture == "hatch":  # thin crossing lines
        line = max(1.0, 0.25 * period)
        return ((xx + yy) % period < line) | ((xx - yy) % period < line)
    return np.zeros((h, w), bool)  # solid: the ground colour, with the outline in the pattern colour


def _colour(rng, exclude: int | None = None) -> tuple[np.ndarray, int]:
    """A palette colour (jittered) drawn regardless of class; ``exclude``: an index to avoid."""
    choices = [k for k in range(len(PALETTE)) if k != exclude]
    k = choices[int(rng.integers(len(choices)))]
    jitter = rng.integers(-20, 21, size=3)
    return np.clip(np.array(PALETTE[k]) + jitter, 0, 255).astype(np.uint8), k


def _blob(rng, cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    """An irregular polygon (jagged radii): clutter, never one of the class outlines."""
    k = int(rng.integers(6, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = radius * rng.uniform(0.4, 1.0, k)
    return list(zip((cx + radii * np.cos(angles)).tolist(), (cy + radii * np.sin(angles)).tolist()))


def _clutter(rng, draw: ImageDraw.ImageDraw, size: int) -> None:
    """3–8 distractors in the palette: lines, strokes (polylines) and small blobs."""
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(_colour(rng)[0].tolist())
        kind = rng.integers(3)
        if kind == 0:
            pts = rng.uniform(0, size, size=(2, 2))
            draw.line([tuple(p) for p in pts.tolist()], fill=colour, width=int(rng.integers(1, 3)))
        elif kind == 1:
            start = rng.uniform(0, size, 2)
            steps = rng.normal(0, 0.08 * size, size=(int(rng.integers(2, 5)), 2))
            pts = np.vstack([start, start + np.cumsum(steps, axis=0)])
            draw.line([tuple(p) for p in pts.tolist()], fill=colour,
                      width=int(rng.integers(1, 4)), joint="curve")
        else:
            cx, cy = rng.uniform(0, size, 2)
            draw.polygon(_blob(rng, cx, cy, rng.uniform(0.02, 0.06) * size), fill=colour)


def _layout(rng, n: int, size: int) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1): log-uniform sides in SIZE_RANGE, overlaps up to MAX_OVERLAP."""
    lo, hi = np.log(SIZE_RANGE)

    def draw_wh():
        side = np.exp(rng.uniform(lo, hi)) * size
        aspect = np.exp(rng.uniform(-0.2, 0.2))
        return min(size, max(6, int(side * aspect))), min(size, max(6, int(side / aspect)))
    return place_boxes(rng, n, size, draw_wh, MAX_OVERLAP)


def render(rng, size: int, labels: np.ndarray, names: list[str]):
    """Grey blotchy base with clutter, textured objects, clutter patches over some, pixel noise."""
    grey = rng.uniform(95, 165)
    blotch = rng.normal(0, 18, size=(6, 6, 1)) + grey + rng.uniform(-8, 8, 3)
    img = Image.fromarray(np.clip(blotch, 0, 255).astype(np.uint8)).resize((size, size),
                                                                          Image.BICUBIC)
    _clutter(rng, ImageDraw.Draw(img), size)
    pixels = np.array(img)
    boxes = _layout(rng, len(labels), size)
    for c, (x0, y0, x1, y1) in zip(labels, boxes):
        texture, shape = names[c].split("_")
        w, h = x1 - x0, y1 - y0
        mask = _shape_mask(shape, w, h)
        inner = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255)
                           .filter(ImageFilter.MinFilter(3))) > 0
        ink, k = _colour(rng)
        ground, _ = _colour(rng, exclude=k)
        pattern = _pattern(rng, texture, w, h) | (mask & ~inner)  # the outline in the ink colour
        region = pixels[y0:y1, x0:x1]
        region[mask] = np.where(pattern[..., None], ink, ground)[mask]
    img = Image.fromarray(pixels)
    if boxes and rng.uniform() < OCCLUDED_SHARE:
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 3))):
            x0, y0, x1, y1 = boxes[int(rng.integers(len(boxes)))]
            radius = rng.uniform(0.15, 0.3) * min(x1 - x0, y1 - y0)
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            fill = _colour(rng)[0] if rng.uniform() < 0.5 else np.full(3, grey, np.uint8)
            draw.polygon(_blob(rng, cx, cy, radius), fill=tuple(fill.tolist()))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 7, size=(size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), boxes
