"""The selection's files (SPEC.md §3), published together as one output set."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taast_ray.config import save_with_versions
from taast_ray.data import labelstudio
from taast_ray.data.labels import LabelSet
from taast_ray.io import publish_output_set, write_json, write_parquet, write_parquet_chunks, write_text
from taast_ray.contracts.pool import PoolScalars
from taast_ray.selection.scoring import ImageScores
from taast_ray.selection.strategies import Picks


def _nullable(values: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(values, mask=null)


SCORES_CHUNK_ROWS = 1 << 20  # scores.parquet is built and written this many rows at a time


def scores_chunks(det: PoolScalars, scored: ImageScores, picks: Picks, labels: LabelSet,
                  chunk_rows: int = SCORES_CHUNK_ROWS):
    """scores.parquet in image_id order (whatever order the detections came in), chunk by chunk,
    so its temporaries are those of one chunk rather than of the pool."""
    by_id = np.empty(det.num_images, det.tie_rank.dtype)  # row of each rank: the id order
    by_id[det.tie_rank] = np.arange(det.num_images, dtype=det.tie_rank.dtype)
    selected = np.zeros(det.num_images, bool)
    selected[picks.rows] = True
    for start in range(0, det.num_images, chunk_rows):
        rows = by_id[start:start + chunk_rows]
        cls = scored.candidate_class[rows]
        has_class = cls >= 0
        category = np.where(has_class, labels.category_ids[np.maximum(cls, 0)], 0)
        weight = scored.weight_of(rows)  # w_{c(x)}, or a tail-aware variant's w(x)
        score, cluster = picks.score[rows].astype(np.float64), picks.cluster[rows]
        yield pa.table({
            "image_id": pc.cast(det.image_ids.take(pa.array(rows)), pa.string()),
            "entropy": pa.array(scored.entropy[rows], pa.float64()),
            "candidate_class": _nullable(category.astype(np.int64), ~has_class),
            "weight": _nullable(weight, ~has_class),
            "score": _nullable(score, ~np.isfinite(score)),
            "pseudo": pa.array(scored.pseudo[rows]),
            "candidate": pa.array(picks.candidate[rows]),
            "cluster": _nullable(cluster.astype(np.int64), cluster < 0),
            "selected": pa.array(selected[rows]),
        })


def selection_table(det: PoolScalars, picks: Picks) -> pa.Table:
    rows = picks.rows
    score = picks.score[rows].astype(np.float64)
    cluster = picks.cluster[rows]
    columns = {
        "image_id": pa.array(det.ids(rows), pa.string()),
        "rank": pa.array(np.arange(len(rows), dtype=np.int64)),
        "score": _nullable(score, ~np.isfinite(score)),
        "cluster": _nullable(cluster.astype(np.int64), cluster < 0),
        "fill": pa.array(picks.fill),
    }
    if det.has_uri:
        columns["uri"] = pa.array(det.uris(rows), pa.string())
    return pa.table(columns)


def pseudo_labels_coco(det: PoolScalars, scored: ImageScores, labels: LabelSet) -> dict:
    """P as COCO detections: one image per pseudo-labelled image, its boxes with their argmax class."""
    rows = np.flatnonzero(scored.pseudo)
    rows = rows[np.argsort(det.tie_rank[rows], kind="stable")]
    p = det.box_rows(rows)
    numeric = all(str(i).isdigit() for i in p.image_ids)
    images, annotations = [], []
    for n, name in enumerate(p.image_ids):
        image_id = int(name) if numeric else n + 1
        image = {"id": image_id, "file_name": str(p.uri[n] if p.uri is not None else name),
                 "taast_image_id": str(name)}
        if p.width is not None:
            image.update(width=int(p.width[n]), height=int(p.height[n]))
        images.append(image)
        lo, hi = p.offsets[n], p.offsets[n + 1]
        for box, k, conf in zip(p.boxes[lo:hi], p.box_class[lo:hi], p.box_conf[lo:hi]):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(labels.category_ids[k]),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": 0, "score": float(conf)})
    categories = [{k: v for k, v in c.items() if k in ("id", "name", "frequency", "supercategory")}
                  for c in labels.categories]
    return {"info": {"description": "taast-ray pseudo labels (eq. 1)"}, "images": images,
            "annotations": annotations, "categories": categories}


def label_studio_tasks(det: PoolScalars, scored: ImageScores, picks: Picks, labels: LabelSet) -> list:
    """One Label Studio task per selected image, the detector's boxes as pre-annotations."""
    names = labels.category_names
    chosen = det.box_rows(picks.rows)
    tasks = []
    for rank, (row, fill) in enumerate(zip(picks.rows, picks.fill)):
        k = int(scored.candidate_class[row])
        name = chosen.image_ids[rank]
        data = {"image": str(chosen.uri[rank]) if chosen.uri is not None else str(name),
                "image_id": str(name), "rank": rank, "fill": bool(fill),
                "score": float(picks.score[row]) if np.isfinite(picks.score[row]) else None,
                "candidate_class": names[k] if k >= 0 else None,
                "candidate_category_id": int(labels.category_ids[k]) if k >= 0 else None}
        known = chosen.width is not None and chosen.height is not None
        tasks.append(labelstudio.task(data, _boxes(chosen, rank, names) if known else None))
    return tasks


def _boxes(chosen, n: int, names: list[str]) -> list:
    lo, hi = chosen.offsets[n], chosen.offsets[n + 1]
    width, height = float(chosen.width[n]), float(chosen.height[n])
    return [labelstudio.box_result(box, names[int(k)], conf, width, height)
            for box, k, conf in zip(chosen.boxes[lo:hi], chosen.box_class[lo:hi], chosen.box_conf[lo:hi])]


def read_image_bytes(uri: str) -> bytes:
    """An image's bytes from a local path or an object-store URI (for the report's thumbnails)."""
    from taast_ray.io import resolve

    fs, inner = resolve(uri)
    with fs.open_input_stream(inner) as stream:
        return stream.read()


def _detector_mix(det: PoolScalars, selected: np.ndarray, num_classes: int,
                  chunk_images: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Images per detector class in the pool and in the selection, from the box spool read in
    chunks of whole index blocks (memory independent of the pool size)."""
    from taast_ray.outputs.report import images_per_class

    index, box_class = det.boxes_index, det.spool.array("cls")
    step = max(index.BLOCK, chunk_images // index.BLOCK * index.BLOCK)
    pool_mix, selected_mix = np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64)
    for i0 in range(0, det.num_images, step):
        i1 = min(det.num_images, i0 + step)
        b0, b1 = index.block_start[i0 // index.BLOCK], index.block_start[-1 if i1 == det.num_images
                                                                          else i1 // index.BLOCK]
        owner = np.repeat(np.arange(i0, i1, dtype=np.int64), index.counts[i0:i1])
        cls = np.asarray(box_class[b0:b1], np.int64)
        pool_mix += images_per_class(owner, cls, det.num_images, num_classes)
        keep = selected[owner]
        selected_mix += images_per_class(owner[keep], cls[keep], det.num_images, num_classes)
    return pool_mix, selected_mix


def report_html(det: PoolScalars, scored: ImageScores, picks: Picks, labels: LabelSet, summary: dict,
                truth: dict | None = None) -> str:
    """report.html (outputs/report.py) from the pass's arrays: the B cards, the class mix."""
    from taast_ray.outputs.report import ReportCard, render_report, truth_class_counts

    names, n, num_classes = labels.category_names, det.num_images, labels.num_classes
    selected = np.zeros(n, bool)
    selected[picks.rows] = True
    detector_mix = _detector_mix(det, selected, num_classes)
    chosen = det.box_rows(picks.rows)
    cards = []
    for rank, (row, fill) in enumerate(zip(picks.rows, picks.fill)):
        lo, hi = chosen.offsets[rank], chosen.offsets[rank + 1]
        k = int(scored.candidate_class[row])
        score, cluster = float(picks.score[row]), int(picks.cluster[row])
        cards.append(ReportCard(
            rank=rank, image_id=str(chosen.image_ids[rank]),
            uri=str(chosen.uri[rank]) if chosen.uri is not None else None,
            width=float(chosen.width[rank]) if chosen.width is not None else None,
            height=float(chosen.height[rank]) if chosen.height is not None else None,
            boxes=chosen.boxes[lo:hi], box_class=chosen.box_class[lo:hi], box_conf=chosen.box_conf[lo:hi],
            entropy=float(scored.entropy[row]), candidate_class=names[k] if k >= 0 else None,
            weight=float(scored.weight_of([row])[0]) if k >= 0 else None,
            score=score if np.isfinite(score) else None, cluster=cluster if cluster >= 0 else None,
            fill=bool(fill)))
    truth_mix = None
    if truth is not None:
        truth_mix = truth_class_counts(truth, det.image_ids.to_pylist(), [c.image_id for c in cards],
                                       labels.category_ids)
    return render_report(summary, cards, names, detector_mix, truth_mix, read_image_bytes)


SET_FILES = ("scores.parquet", "selection.parquet", "pseudo_labels.json", "label_studio_tasks.json",
             "label_config.xml", "errors.parquet", "summary.json", "config.yaml", "report.html")


def write_selection_outputs(out: Path | str, det: PoolScalars, scored: ImageScores, picks: Picks,
                            labels: LabelSet, summary: dict, errors: pa.Table | None = None,
                            truth: dict | None = None) -> None:
    """The whole set, published at once (``io.publish_output_set``): the previous set or this one,
    never a mix. ``config.yaml`` is the summary's configuration with the software versions."""
    writers = {
        "scores.parquet": lambda p: write_parquet_chunks(p, scores_chunks(det, scored, picks, labels)),
        "selection.parquet": lambda p: write_parquet(p, selection_table(det, picks)),
        "pseudo_labels.json": lambda p: write_json(p, pseudo_labels_coco(det, scored, labels)),
        "label_studio_tasks.json": lambda p: write_json(p, label_studio_tasks(det, scored, picks, labels)),
        "label_config.xml": lambda p: write_text(p, labelstudio.label_config(labels.category_names)),
    }
    if errors is not None:
        writers["errors.parquet"] = lambda p: write_parquet(p, errors)
    writers["report.html"] = lambda p: write_text(p, report_html(det, scored, picks, labels, summary, truth))
    writers["summary.json"] = lambda p: write_json(p, summary)
    writers["config.yaml"] = lambda p: save_with_versions(summary["config"], p)
    publish_output_set(out, writers, replaces=SET_FILES)


def write_failed_outputs(out: Path | str, errors: pa.Table, summary: dict) -> None:
    """A pass that could select nothing (every image unreadable, fewer readable images than the
    budget) still publishes what it learnt: errors.parquet, the summary (``status`` "failed" and
    the reason) and the configuration; any previous selection files are removed with it."""
    publish_output_set(out, {"errors.parquet": lambda p: write_parquet(p, errors),
                             "summary.json": lambda p: write_json(p, summary),
                             "config.yaml": lambda p: save_with_versions(summary["config"], p)},
                       replaces=SET_FILES)
