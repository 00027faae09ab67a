"""Synthetic long-tailed detection data (``taast synth``), in LVIS JSON and the YOLO layout.

Two families (FAMILIES) of classes and drawings, with the same priors, splits and files:
``shapes`` (the default): shape × colour pairs drawn on noisy, blotchy backgrounds, so colour alone
tells the classes apart; ``textures`` (:mod:`taast_ray.data.synth_textures`): texture × outline
pairs whose colours come from one shared palette, at more scales, occluded and on cluttered
backgrounds. Each image holds 1–4 objects (or none, a share ``empty_fraction``), each object's class
drawn from a Zipf prior.

Why ranks are spread out: at ranks 1..12, Zipf 1.2 leaves the last class 5% of the objects, so
nothing is rare at a few thousand images. Class k stands for rank TAIL_RANK ** (k / (C - 1)) of an
LVIS-sized tail, prior ∝ rank ** -zipf (the same law at log-spaced ranks), which gives LVIS-like
r/c/f groups; ``stats["ranks"]`` records the ranks so the exponent can be fitted back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from taast_ray.data import synth_textures
from taast_ray.data.frequency import l0_tag, lvis_tag
from taast_ray.data.synth_layout import place_boxes
from taast_ray.data.yolo import export_yolo
from taast_ray.errors import ConfigError

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
COLOURS = {"red": (225, 30, 30), "green": (30, 190, 40), "blue": (35, 60, 235),
           "yellow": (245, 225, 30), "magenta": (225, 40, 225), "cyan": (30, 215, 225),
           "orange": (250, 140, 20), "black": (15, 15, 15)}
FAMILIES = ("shapes", "textures")  # config.SYNTHETIC_FAMILIES repeats it (config sits below data)
TAIL_RANK = 1000.0
SPLITS = ("train", "val", "test")
SIZE_RANGE = (0.15, 0.45)  # object side as a share of the image side
MAX_OVERLAP = 0.35         # at most this share of the smaller box may be hidden by another


class LabelShift(NamedTuple):
    kind: str          # "dirichlet" (uses alpha) or "tweak" (uses cls and rho)
    alpha: float = 0.0
    cls: int = -1
    rho: float = 0.0


def parse_label_shift(spec: str) -> LabelShift:
    """``dirichlet:ALPHA`` (ALPHA > 0) or ``tweak:CLASS:RHO`` (0-based CLASS, 0 ≤ RHO ≤ 1)."""
    kind, *values = str(spec).strip().split(":")
    try:
        if kind == "dirichlet" and len(values) == 1 and float(values[0]) > 0:
            return LabelShift("dirichlet", alpha=float(values[0]))
        if kind == "tweak" and len(values) == 2:
            cls, rho = int(values[0]), float(values[1])
            if cls >= 0 and 0 <= rho <= 1:
                return LabelShift("tweak", cls=cls, rho=rho)
    except ValueError:
        pass
    raise ConfigError(f"--label-shift: expected 'dirichlet:ALPHA' (ALPHA > 0) or "
                      f"'tweak:CLASS:RHO' (CLASS ≥ 0, 0 ≤ RHO ≤ 1), got {spec!r}")


def class_names(classes: int, family: str = "shapes") -> list[str]:
    """Unique (colour, shape) pairs; consecutive classes differ in both shape and colour.

    ``family="textures"``: unique (texture, outline) pairs (:func:`synth_textures.class_names`)."""
    if family == "textures":
        return synth_textures.class_names(classes)
    colours, n = list(COLOURS), len(SHAPES)
    # the colour steps n + 1 = 7 per cycle of shapes, coprime with 8 colours → all pairs unique
    return [f"{colours[(k + k // n) % len(colours)]}_{SHAPES[k % n]}" for k in range(classes)]


def class_prior(classes: int, zipf: float) -> tuple[np.ndarray, np.ndarray]:
    """(ranks, prior): log-spaced ranks in [1, TAIL_RANK] and prior ∝ rank ** -zipf."""
    ranks = TAIL_RANK ** (np.arange(classes) / max(classes - 1, 1))
    weights = ranks ** -float(zipf)
    return ranks, weights / weights.sum()


def shifted_prior(prior: np.ndarray, shift: LabelShift | None, rng) -> np.ndarray:
    """The test split's prior. Dirichlet: mean = train prior, concentration ALPHA (small = far)."""
    if shift is None:
        return prior
    if shift.kind == "dirichlet":
        # floor the concentrations: gamma(shape≈0) underflows to exactly 0 for tail classes
        return rng.dirichlet(np.maximum(shift.alpha * prior, 1e-3))
    if shift.cls >= len(prior):
        raise ConfigError(f"--label-shift: class {shift.cls} out of range (0..{len(prior) - 1})")
    rest = np.delete(prior, shift.cls)
    out = np.insert(rest / rest.sum() * (1.0 - shift.rho), shift.cls, shift.rho)
    return out / out.sum()


def _plan_split(rng, n: int, empty: np.ndarray, prior: np.ndarray) -> list[np.ndarray]:
    """Object classes for each of ``n`` images; every class shows up once where there is room."""
    counts = np.where(empty, 0, rng.integers(1, 5, size=n))
    labels = rng.choice(len(prior), size=int(counts.sum()), p=prior)
    if labels.size >= len(prior):
        for c in np.setdiff1d(np.arange(len(prior)), labels):
            # relabel one object of the most common class: every class gets evaluated in each split
            common = np.flatnonzero(labels == np.bincount(labels).argmax())
            labels[rng.choice(common)] = c
    return np.split(labels, np.cumsum(counts)[:-1]) if n else []


def _layout(rng, n: int, size: int) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1): varied sizes, overlaps allowed but never hiding most of a box."""
    def draw_wh():
        side = rng.uniform(*SIZE_RANGE) * size
        aspect = np.exp(rng.uniform(-0.25, 0.25))
        return int(side * aspect), int(side / aspect)
    return place_boxes(rng, n, size, draw_wh, MAX_OVERLAP)


def _draw(draw: ImageDraw.ImageDraw, shape: str, box, colour) -> None:
    x0, y0, x1, y1 = box[0], box[1], box[2] - 1, box[3] - 1
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "cross":
        draw.rectangle((x0, cy - h / 6, x1, cy + h / 6), fill=colour)
        draw.rectangle((cx - w / 6, y0, cx + w / 6, y1), fill=colour)
    elif shape == "ring":
        draw.ellipse((x0, y0, x1, y1), outline=colour, width=max(3, int(0.22 * min(w, h))))
    else:  # diamond
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)


def _render(rng, size: int, labels: np.ndarray, names: list[str]):
    """Muted grey-ish base with blotches (texture, not object colours), objects, pixel noise."""
    blotch = rng.normal(0, 22, size=(6, 6, 3)) + rng.uniform(80, 170) + rng.uniform(-15, 15, 3)
    img = Image.fromarray(np.clip(blotch, 0, 255).astype(np.uint8)).resize((size, size),
                                                                          Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    boxes = _layout(rng, len(labels), size)
    for c, box in zip(labels, boxes):
        colour_name, shape = names[c].split("_")
        colour = np.clip(np.array(COLOURS[colour_name]) + rng.integers(-20, 21, size=3), 0, 255)
        _draw(draw, shape, box, tuple(colour.tolist()))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 7, size=(size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), boxes


def _renderer(family: str):
    return synth_textures.render if family == "textures" else _render


def _validate(images, classes, image_size, zipf, empty_fraction, split_fractions,
              family: str = "shapes") -> None:
    fractions_ok = min(split_fractions) > 0 and abs(sum(split_fractions) - 1) < 1e-6
    for field, ok, why in [("--family", family in FAMILIES,
                            f"must be one of {', '.join(FAMILIES)}, got {family!r}"),
                           ("--images", images >= 3, "must be ≥ 3"),
                           ("--classes", 1 <= classes <= 48, "must be 1..48"),
                           ("--image-size", image_size >= 32, "must be ≥ 32"),
                           ("--zipf", zipf >= 0, "must be ≥ 0"),
                           ("--empty-fraction", 0 <= empty_fraction < 1, "must be in [0, 1)"),
                           ("split_fractions", fractions_ok, "must be 3 shares > 0 summing to 1")]:
        if not ok:
            raise ConfigError(f"{field}: {why}")


def _plan(rng, images: int, fractions, empty_fraction: float, prior, test_prior) -> dict:
    """{split: [object classes per image]}; images are numbered train, then val, then test."""
    n_train, n_val = round(images * fractions[0]), round(images * fractions[1])
    empty = np.zeros(images, bool)
    empty[rng.choice(images, size=round(empty_fraction * images), replace=False)] = True
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val),
              "test": (n_train + n_val, images)}
    return {s: _plan_split(rng, b - a, empty[a:b], test_prior if s == "test" else prior)
            for s, (a, b) in bounds.items()}


def fill_evaluation_split(rng, plan: list[np.ndarray], prior: np.ndarray,
                          min_instances: int) -> list[np.ndarray]:
    """Extra images for classes with fewer than ``min_instances`` objects in this split.

    Each extra image holds one object of the most under-filled class (lowest index on ties) and
    0–3 more drawn from the split's prior, like any image; the split's own images are unchanged.
    Only evaluation splits are filled: train (L0 and the pool) keeps the natural long tail."""
    if min_instances <= 0:
        return []
    counts = np.bincount(np.concatenate([*plan, np.zeros(0, int)]).astype(int),
                         minlength=len(prior))
    extra = []
    while (deficit := min_instances - counts).max() > 0:
        labels = np.concatenate([[int(deficit.argmax())],
                                 rng.choice(len(prior), size=int(rng.integers(0, 4)), p=prior)])
        counts += np.bincount(labels, minlength=len(prior))
        extra.append(labels.astype(int))
    return extra


def make_synthetic_dataset(out: Path, *, images: int = 3000, classes: int = 12, seed: int = 0,
                           image_size: int = 160, zipf: float = 1.2, empty_fraction: float = 0.0,
                           label_shift: str | None = None,
                           split_fractions=(0.7, 0.15, 0.15), eval_min_instances: int = 0,
                           family: str = "shapes") -> dict:
    """Write images, LVIS JSON per split and the YOLO layout under ``out``; return the stats.

    ``eval_min_instances`` > 0 adds images to val and test (never train) until every class has
    that many objects there (:func:`fill_evaluation_split`); ``stats["eval_fill"]`` counts them.
    ``family`` (FAMILIES) picks the classes and their drawing; only the drawing differs, the
    priors, plans and random streams do not. The annotations' ``info`` names a family other than
    ``shapes`` (so a ``shapes`` set stays byte-identical to one made before families existed);
    ``stats["family"]`` always names it."""
    _validate(images, classes, image_size, zipf, empty_fraction, split_fractions, family)
    if eval_min_instances < 0:
        raise ConfigError(f"--eval-min-instances: must be >= 0, got {eval_min_instances}")
    shift = parse_label_shift(label_shift) if label_shift else None
    out, rng, names = Path(out), np.random.default_rng(seed), class_names(classes, family)
    ranks, prior = class_prior(classes, zipf)
    # separate streams: the label shift changes only the test split, never train or val
    test_prior = shifted_prior(prior, shift, np.random.default_rng([seed, 1]))
    plans = _plan(rng, images, split_fractions, empty_fraction, prior, test_prior)
    fill = {s: fill_evaluation_split(np.random.default_rng([seed, 3, i]), plans[s],
                                     test_prior if s == "test" else prior, eval_min_instances)
            for i, s in enumerate(SPLITS) if s != "train"}
    for s, extra in fill.items():
        plans[s] = plans[s] + extra
    firsts = dict(zip(SPLITS, np.cumsum([0] + [len(plans[s]) for s in SPLITS]).tolist()))
    records = {s: _write_images(np.random.default_rng([seed, 2, i]), out, s, firsts[s], plans[s],
                                image_size, names, family) for i, s in enumerate(SPLITS)}
    counts = {s: _image_counts(records[s][1], classes) for s in SPLITS}
    tags = [lvis_tag(n) for n in counts["train"]]
    instances = np.bincount([a["category_id"] - 1 for a in records["train"][1]], minlength=classes)
    cats = [{"id": k + 1, "name": names[k], "frequency": tags[k],
             "image_count": int(counts["train"][k]), "instance_count": int(instances[k])}
            for k in range(classes)]
    info = {"description": "taast-ray synthetic long-tailed detection set", "seed": seed,
            "zipf": zipf, "empty_fraction": empty_fraction, "label_shift": label_shift}
    if family != "shapes":
        info["family"] = family
    ann_files = {s: _dump(out / "annotations" / f"{s}.json",
                          {"info": dict(info, split=s), "images": records[s][0], "licenses": [],
                           "annotations": records[s][1], "categories": cats}) for s in SPLITS}
    yaml_path = export_yolo(ann_files, out / "images", out / "yolo", cats)
    stats = {"names": names, "ranks": ranks.tolist(), "prior": prior.tolist(),
             "test_prior": test_prior.tolist(), "frequency": tags,
             "sizes": {s: len(plans[s]) for s in SPLITS},
             "image_counts": {s: counts[s].tolist() for s in SPLITS},
             "objects": {s: len(records[s][1]) for s in SPLITS},
             "empty_images": {s: int(sum(not p.size for p in plans[s])) for s in SPLITS},
             "instances": {s: np.bincount([a["category_id"] - 1 for a in records[s][1]],
                                          minlength=classes).tolist() for s in SPLITS},
             "eval_min_instances": eval_min_instances,
             "eval_fill": {s: {"images": len(extra),
                               "objects": int(sum(len(e) for e in extra))}
                           for s, extra in fill.items()},
             "annotations": {s: str(p) for s, p in ann_files.items()},
             "dataset_yaml": str(yaml_path), "family": family, **info}
    _dump(out / "stats.json", stats)
    return stats


def _write_images(rng, out: Path, split: str, first: int, plan, size: int, names,
                  family: str = "shapes"):
    """Render and save one split; ids are global (1-based) so splits can be merged."""
    render = _renderer(family)
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    images, anns, all_ids = [], [], set(range(1, len(names) + 1))
    for i, labels in enumerate(plan):
        image_id, file_name = first + i + 1, f"{split}/{first + i + 1:06d}.jpg"
        img, boxes = render(rng, size, labels, names)
        img.save(out / "images" / file_name, quality=92)
        # exhaustive labels: every absent class is a verified negative, so LVISEval counts its FPs
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size,
                       "neg_category_ids": sorted(all_ids - {int(c) + 1 for c in labels}),
                       "not_exhaustive_category_ids": []})
        for j, (c, (x0, y0, x1, y1)) in enumerate(zip(labels, boxes)):
            # ≤ 4 objects per image, so 4 * image_id + j is unique across splits too
            anns.append({"id": 4 * image_id + j, "image_id": image_id,
                         "category_id": int(c) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                         "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
    return images, anns


def _image_counts(anns: list[dict], classes: int) -> np.ndarray:
    pairs = {(a["image_id"], a["category_id"]) for a in anns}
    return np.bincount([c - 1 for _, c in pairs], minlength=classes)


def _dump(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))  # same seed, same bytes
    return path


def format_class_table(stats: dict, l0_counts: list[int] | None = None) -> str:
    """Per-class image counts per split with the LVIS r/c/f tag (tag from the train split).

    With ``l0_counts`` (images per class in L0) also L0, the pool (train − L0) and the tag
    counted on L0 (r < 10, c 10–100, f > 100 images: the paper's definition of rare)."""

    extra = f"{'L0':>6}{'pool':>6}  {'L0 tag'}" if l0_counts is not None else ""
    rows = [f"{'id':>3}  {'class':<16}{'tag':<5}" + "".join(f"{s:>8}" for s in SPLITS) + extra]
    for k, name in enumerate(stats["names"]):
        cells = "".join(f"{stats['image_counts'][s][k]:>8}" for s in SPLITS)
        if l0_counts is not None:
            n = l0_counts[k]
            cells += f"{n:>6}{stats['image_counts']['train'][k] - n:>6}  {l0_tag(n)}"
        rows.append(f"{k + 1:>3}  {name:<16}{stats['frequency'][k]:<5}{cells}")
    return "\n".join(rows)
