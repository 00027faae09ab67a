"""Detector stage: compressed bytes in, the detections contract (SPEC.md §3) out, per image.

A Ray Data actor (one model per worker, loaded in :meth:`~taast_ray.stages.stage.Stage.setup`);
the class also runs in a plain loop, which is how the benchmarks' in-process baselines and the GPU
measurements call it.
Undecodable records come out with ``error`` set and no boxes; they never stop the batch.
With ``embed=True`` (``model.embedder: detector``) each row also carries ``embedding``, the
detector's pooled neck features (SPEC §3 lets detections carry extra columns); null where the
image did not decode. With ``exemplars`` (class prototypes, for an exemplar-rarity strategy) each
row also carries ``exemplar``: C floats, the largest exemplar posterior of each class over the
image's boxes (selection/exemplar.py); null where the image did not decode.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from taast_ray.contracts.detections import EXEMPLAR_COLUMN
from taast_ray.models.detector import BoxRows, Detector
from taast_ray.stages.base import DecodingStage
from taast_ray.stages.decode import MAX_PIXELS
from taast_ray.stages.device import granted_device
from taast_ray.stages.stage import StageResources
from taast_ray.stages.tensor_decode import DecodedBatch

_F32_ROWS = pa.list_(pa.list_(pa.float32()))
DETECTIONS_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("uri", pa.string()), ("boxes", _F32_ROWS), ("scores", _F32_ROWS),
    ("width", pa.int32()), ("height", pa.int32()), ("error", pa.string()), ("error_stage", pa.string()),
    ("converted", pa.string()),
])
EMBEDDING_COLUMN = "embedding"


def detections_schema(embed_dim: int | None = None, exemplar_classes: int | None = None) -> pa.Schema:
    """The contract's columns, plus ``embedding`` fixed_size_list<float32>[D] when the pass embeds
    and ``exemplar`` fixed_size_list<float32>[C] when it has exemplar prototypes."""
    schema = DETECTIONS_SCHEMA
    if embed_dim is not None:
        schema = schema.append(pa.field(EMBEDDING_COLUMN, pa.list_(pa.float32(), embed_dim)))
    if exemplar_classes is not None:
        schema = schema.append(pa.field(EXEMPLAR_COLUMN, pa.list_(pa.float32(), exemplar_classes)))
    return schema


class DetectStage(DecodingStage):
    name = "detect"

    def __init__(self, weights: str, *, imgsz: int, conf: float, num_classes: int | None,
                 device: str = "auto", max_pixels: int = MAX_PIXELS, embed: bool = False,
                 exemplars: dict | None = None):
        self.detector_args = {"weights": weights, "imgsz": imgsz, "conf": conf,
                              "num_classes": num_classes, "embed": embed, "exemplars": exemplars}
        self.requested_device, self.max_pixels = device, max_pixels

    @classmethod
    def resources(cls, gpu: bool) -> StageResources:
        """A whole GPU per detector actor when the cluster has GPUs, else one CPU."""
        return StageResources(cpus=1.0, gpus=1.0 if gpu else 0.0)

    def setup(self) -> None:
        self.detector = Detector(**self.detector_args, device=granted_device(self.requested_device))
        self.device = self.detector.device

    def process(self, batch: pa.Table | dict) -> pa.Table:
        decoded = self.decode(batch)
        rows = self.detector.predict_rows([decoded.images[i] for i in decoded.ok])
        if rows.embeddings is None and self.detector.embed_dim is not None:  # nothing decoded
            rows.embeddings = np.zeros((0, self.detector.embed_dim), np.float32)
        if rows.exemplar is None and self.detector.exemplars is not None:
            rows.exemplar = np.zeros((0, self.detector.num_classes), np.float32)
        return detections_table(decoded, rows)


def detections_table(decoded: DecodedBatch, rows: BoxRows) -> pa.Table:
    """The batch as the detections contract, built from flat arrays: no Python object per box.

    ``rows`` holds the boxes of the decoded rows (``decoded.ok``), in that order; with
    ``rows.embeddings`` set, their pooled features become the ``embedding`` column.
    """
    counts = np.zeros(len(decoded.images), np.int64)
    counts[decoded.ok] = np.diff(rows.offsets)
    per_image = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    n = len(decoded.image_id)
    columns = {
        "image_id": pa.array([str(v) for v in decoded.image_id], pa.string()),
        "uri": pa.array(decoded.uri if decoded.uri is not None else [None] * n, pa.string()),
        "boxes": pa.ListArray.from_arrays(per_image, _rows(rows.boxes)),
        "scores": pa.ListArray.from_arrays(per_image, _rows(rows.scores)),
        "width": decoded.width, "height": decoded.height,
        "error": pa.array(decoded.error, pa.string()), "error_stage": pa.array(decoded.error_stage, pa.string()),
        "converted": pa.array(decoded.converted, pa.string()),
    }
    if rows.embeddings is not None:
        columns[EMBEDDING_COLUMN] = _per_image_rows(decoded, rows.embeddings)
    if rows.exemplar is not None:
        columns[EXEMPLAR_COLUMN] = _per_image_rows(decoded, rows.exemplar)
    return pa.table(columns, schema=detections_schema(
        None if rows.embeddings is None else rows.embeddings.shape[1],
        None if rows.exemplar is None else rows.exemplar.shape[1]))


def _per_image_rows(decoded: DecodedBatch, values: np.ndarray) -> pa.FixedSizeListArray:
    """One fixed-size row per record from the decoded rows' ``values``; null where it failed."""
    dim = values.shape[1]
    full = np.zeros((len(decoded.images), dim), np.float32)
    full[decoded.ok] = values
    failed = np.ones(len(decoded.images), bool)
    failed[decoded.ok] = False
    return pa.FixedSizeListArray.from_arrays(pa.array(full.reshape(-1)), dim, mask=pa.array(failed))


def _rows(matrix: np.ndarray) -> pa.ListArray:
    """A (m, w) float32 matrix as m list<float32> rows over one flat buffer."""
    m, w = matrix.shape
    starts = pa.array(np.arange(0, m * w + 1, w, dtype=np.int32))
    return pa.ListArray.from_arrays(starts, pa.array(np.ascontiguousarray(matrix, np.float32).reshape(-1)))


def embeddings_from_detections(detections, wanted: pa.Table, target) -> int:
    """``embedder: detector``: the wanted images' ``embedding`` rows, read from the detections
    files under ``detections``, written as one embeddings file (SPEC §3) into the folder ``target``.

    Only the wanted rows are materialised (a filtered scan), not the whole pool's features.
    Returns how many rows were written; a wanted image without a row is left for the selection
    core to name.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    from taast_ray.errors import InputError
    from taast_ray.io import bare_paths, child, list_parquet, remove_tree, write_parquet

    fs, files = bare_paths(list_parquet(detections))
    dataset = pads.dataset(files, format="parquet", filesystem=fs)
    if EMBEDDING_COLUMN not in dataset.schema.names:
        raise InputError(f"{detections}: detections have no {EMBEDDING_COLUMN!r} column (written with "
                         f"another model.embedder?): run again without --resume")
    ids = pc.cast(wanted.column("image_id"), pa.string())
    table = dataset.to_table(columns=["image_id", EMBEDDING_COLUMN],
                             filter=pc.field("image_id").isin(ids) & pc.field(EMBEDDING_COLUMN).is_valid())
    remove_tree(target)
    write_parquet(child(target, "embeddings.parquet"), table)
    return table.num_rows
