"""The tail as the paper defines it, measured where ground truth is known (simulation).

A class is rare if it has fewer than 10 images in the initial labelled set L0 (SPEC.md §6):
groups counted on L0 are r < 10 images, c 10–100, f > 100. The file's own LVIS tags (counted on
the whole training split, r ≤ 10) stay what ``APr`` reports; these give ``APr@L0`` and the tail
lift: how many L0-rare objects and images a selection caught against what random selection
would catch in expectation (B × the pool's share). Pure functions: no Ray, no files.
"""
from __future__ import annotations

from collections import defaultdict

from taast_ray.data.frequency import image_counts, l0_tag, lvis_tag

def l0_frequency(labels: dict) -> dict[int, str]:
    """Category id → r/c/f counted on the images of ``labels`` (L0)."""
    return {cat: l0_tag(n) for cat, n in image_counts(labels).items()}


def rare_ids(frequency: dict[int, str]) -> set[int]:
    return {cat for cat, tag in frequency.items() if tag == "r"}


def _per_image(labels: dict, rare: set[int]) -> tuple[dict, dict]:
    """image id (str) → (objects, L0-rare objects); every image of ``labels`` listed."""
    objects, rare_objects = defaultdict(int), defaultdict(int)
    for img in labels["images"]:
        objects[str(img["id"])] += 0
        rare_objects[str(img["id"])] += 0
    for a in labels["annotations"]:
        objects[str(a["image_id"])] += 1
        rare_objects[str(a["image_id"])] += a["category_id"] in rare
    return objects, rare_objects


def _ratio(caught: float, expected: float) -> float | None:
    return None if expected <= 0 else caught / expected


def tail_lift(pool_labels: dict, selected_ids, rare: set[int],
              candidate_classes: dict | None = None) -> dict:
    """What the selection caught of the pool's L0-rare classes, against random in expectation.

    ``pool_labels``: ground truth of the cycle's pool (every pool image listed, empty ones too);
    ``selected_ids``: the B selected image ids; ``rare``: L0-rare category ids;
    ``candidate_classes``: image id → the detector's candidate class c(x) (category id or None)
    for the pool images, to compare how often c(x) is L0-rare with the pool's true share.
    Ratios are None where the pool holds no L0-rare object (nothing to catch).
    """
    objects, rare_objects = _per_image(pool_labels, rare)
    selected = [str(i) for i in selected_ids]
    unknown = [i for i in selected if i not in objects]
    if unknown:
        raise ValueError(f"selected image {unknown[0]} is not in the pool's labels")
    n_pool, budget = len(objects), len(selected)
    pool_rare_images = sum(1 for n in rare_objects.values() if n)
    pool_rare_objects = sum(rare_objects.values())
    caught_images = sum(1 for i in selected if rare_objects[i])
    caught_objects = sum(rare_objects[i] for i in selected)
    expected_images = budget * pool_rare_images / n_pool if n_pool else 0.0
    expected_objects = budget * pool_rare_objects / n_pool if n_pool else 0.0
    out = {"rare_classes": sorted(rare), "pool_images": n_pool, "selected": budget,
           "pool_rare_images": pool_rare_images, "pool_rare_objects": pool_rare_objects,
           "rare_images_selected": caught_images, "rare_objects_selected": caught_objects,
           "rare_images_random": expected_images, "rare_objects_random": expected_objects,
           "tail_lift": _ratio(caught_images, expected_images),
           "tail_lift_objects": _ratio(caught_objects, expected_objects)}
    if candidate_classes is not None:
        out.update(candidate_rarity(candidate_classes, objects, rare_objects, rare, selected))
    return out


def candidate_rarity(candidate_classes: dict, objects: dict, rare_objects: dict, rare: set[int],
                     selected: list[str]) -> dict:
    """How often c(x) names an L0-rare class, over the pool and the selection, against the truth.

    The true shares: of the pool's objects, the L0-rare ones; of the pool's object-bearing
    images, those holding an L0-rare object."""
    named = {str(i): c for i, c in candidate_classes.items() if c is not None}
    named_rare = {i for i, c in named.items() if int(c) in rare}
    all_objects = sum(objects.values())
    with_objects = sum(1 for n in objects.values() if n)
    return {"candidate_images": len(named),
            "candidate_rare": len(named_rare),
            "candidate_rare_share": len(named_rare) / len(named) if named else None,
            "candidate_rare_selected": sum(1 for i in selected if i in named_rare),
            "pool_rare_object_share": sum(rare_objects.values()) / all_objects if all_objects else None,
            "pool_rare_image_share": (sum(1 for n in rare_objects.values() if n) / with_objects
                                      if with_objects else None)}


def box_coverage(boxes_per_image: dict, object_images) -> dict:
    """Share of the object-bearing images on which the detector kept ≥ 1 box.

    ``boxes_per_image``: image id → number of kept boxes (every image the detector saw);
    ``object_images``: the ids that hold ≥ 1 object in truth (None: count every image)."""
    seen = {str(i): int(n) for i, n in boxes_per_image.items()}
    wanted = set(seen) if object_images is None else {str(i) for i in object_images} & set(seen)
    hit = sum(1 for i in wanted if seen[i] > 0)
    return {"images": len(wanted), "with_boxes": hit,
            "share": hit / len(wanted) if wanted else None,
            "over": "object-bearing images" if object_images is not None else "all images"}


DEGENERATE_COVERAGE = 0.5  # below this share of object-bearing images with boxes, say so


def degenerate_warning(coverage: dict, where: str) -> str | None:
    """One loud line when the detector finds boxes on under half the images that hold objects."""
    share = coverage.get("share")
    if share is None or share >= DEGENERATE_COVERAGE:
        return None
    return (f"WARNING {where}: the detector found boxes on only {coverage['with_boxes']} of "
            f"{coverage['images']} {coverage['over']} ({share:.0%} < {DEGENERATE_COVERAGE:.0%}); "
            f"uncertainty and rarity have little to rank, so this selection is close to arbitrary "
            f"(a degenerate start model: train the warm-up longer or start from better weights)")


def training_frequency(labels: dict) -> dict[int, str]:
    """The r/c/f groups of APr/APc/APf for a team's own data: the labelled training set's LVIS
    tags when every category carries one, else counted on its images by LVIS's rule (never on
    the validation split, whose counts say nothing about what the model learnt from)."""
    tags = {c["id"]: c.get("frequency") for c in labels["categories"]}
    if all(t in ("r", "c", "f") for t in tags.values()):
        return tags
    return {cat: lvis_tag(n) for cat, n in image_counts(labels).items()}


def format_own_class_table(labels: dict, val: dict | None = None) -> str:
    """The demo's class table for a team's data: images per class in L (and val), the group
    APr/APc/APf use (``tag``) and the group counted on L0 (``L0 tag``, the paper's rare)."""
    counts, tags = image_counts(labels), training_frequency(labels)
    val_counts = image_counts(val) if val is not None else None
    head = f"{'id':>3}  {'class':<20}{'tag':<5}{'L':>8}" + (f"{'val':>8}" if val_counts else "") + "  L0 tag"
    rows = [head]
    for c in sorted(labels["categories"], key=lambda c: c["id"]):
        cells = f"{counts[c['id']]:>8}" + (f"{val_counts.get(c['id'], 0):>8}" if val_counts else "")
        rows.append(f"{c['id']:>3}  {str(c.get('name', c['id']))[:19]:<20}{tags[c['id']]:<5}{cells}  "
                    f"{l0_tag(counts[c['id']])}")
    return "\n".join(rows)
