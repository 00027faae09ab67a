"""Frequency groups of classes, counted in images: LVIS's tags and the paper's groups on L0.

LVIS tags a class by its training images: r ≤ 10 (unseen classes too), c 11–100, f above. The
paper's rare (SPEC.md §6) counts the initial labelled set L0 instead: r < 10 images, c 10–100,
f > 100. The synthetic and imported sets tag with the first; evaluation reports both.
"""
from __future__ import annotations

LVIS_RARE_MAX = 10       # LVIS tags: r <= 10 training images, c 11-100, f > 100
LVIS_COMMON_MAX = 100
L0_RARE_BELOW = 10       # r: fewer than 10 L0 images
L0_FREQUENT_ABOVE = 100  # f: more than 100 L0 images; c in between (10–100)


def lvis_tag(image_count: int) -> str:
    return "r" if image_count <= LVIS_RARE_MAX else "c" if image_count <= LVIS_COMMON_MAX else "f"


def l0_tag(image_count: int) -> str:
    return "r" if image_count < L0_RARE_BELOW else "c" if image_count <= L0_FREQUENT_ABOVE else "f"


def image_counts(labels: dict) -> dict[int, int]:
    """Category id → number of images holding ≥ 1 box of it; every category listed (0 if none)."""
    seen = {(a["image_id"], a["category_id"]) for a in labels["annotations"]}
    counts = {c["id"]: 0 for c in labels["categories"]}
    for _, category in seen:
        counts[category] = counts.get(category, 0) + 1
    return counts
