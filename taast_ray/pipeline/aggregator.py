"""The central aggregator (SPEC.md §5): one actor holds the pool's per-image scores.

It reads the detector's files from the run directory (never through the driver), adds the
labelled set's class counts to the pseudo labels' counts, computes weights and φ, chooses the
images to embed, and after embedding runs k-means and the pick — all through the selection core.
The driver only ever sees counts and the candidate table.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taast_ray.config import TaastConfig, config_from_dict
from taast_ray.data.labels import load_labels
from taast_ray.error_records import count_by_reason, count_by_stage, errors_table
from taast_ray.errors import InputError
from taast_ray.io import bare_paths, child, list_parquet, write_parquet
from taast_ray.selection.detections import read_detections
from taast_ray.selection.embeddings import ParquetEmbeddings
from taast_ray.selection.kmeans import resolve_backend
from taast_ray.selection.outputs import write_selection_outputs
from taast_ray.selection.run import StageTimer, build_summary, check_budget, make_context, score_detections
from taast_ray.selection.strategies import rows_to_embed, run_strategy
from taast_ray.stages.device import granted_gpus

log = logging.getLogger(__name__)




class CentralAggregator:
    def __init__(self, config: dict, labels_path: str):
        self.cfg: TaastConfig = config_from_dict(config).validate()
        self.labels = load_labels(labels_path)
        self.timer = StageTimer()
        self.det = self.scored = None
        self.errors: pa.Table | None = None

    def load(self, detections_dir: str) -> dict:
        """Read every detections file, set aside the failed records, score the rest (eqs. 1–7)."""
        with self.timer("aggregate"):
            files = list_parquet(detections_dir)
            if not files:
                raise InputError(f"{detections_dir}: no detections written")
            failed: list[pa.Table] = []
            self.det = read_detections(files, self.labels.num_classes, failed=failed)
            self.errors = self._errors(pa.concat_tables(failed, promote_options="default") if failed else None)
            check_budget(self.cfg.selection.budget, self.det.num_images, str(detections_dir))
            self.scored = score_detections(self.det, self.labels, self.cfg.selection)
            fs, paths = bare_paths(files)
            converted = sum(pc.sum(pc.is_valid(pq.read_table(f, columns=["converted"], filesystem=fs).column(0)))
                            .as_py() or 0 for f in paths)
        return {"pool_size": int(self.det.num_images + self.errors.num_rows),
                "scored": int(self.det.num_images), "errors": int(self.errors.num_rows),
                "pseudo_labelled": int(self.scored.pseudo.sum()), "converted": int(converted),
                "errors_by_reason": count_by_reason(self.errors)}

    def _errors(self, failed: pa.Table | None) -> pa.Table:
        """The failed records as errors.parquet rows, each with the stage its step stamped."""
        if failed is None:
            return errors_table([])
        return errors_table(failed.to_pylist()).sort_by("image_id")

    @property
    def _selection(self):
        """The selection settings with k-means on what this actor was granted: a GPU only with
        ray.aggregator_gpus > 0 (resolved per call, so a bad choice comes back as one line)."""
        gpus = granted_gpus()
        backend = resolve_backend(self.cfg.selection.kmeans_backend, gpu_allowed=gpus is None or bool(gpus))
        return replace(self.cfg.selection, kmeans_backend=backend)

    def to_embed(self) -> pa.Table:
        """(image_id, uri) of the images the strategy will look up embeddings for."""
        sel = self._selection
        rows = rows_to_embed(sel.strategy, make_context(self.det, self.scored, sel, None, self.labels))
        return pa.table({"image_id": pa.array(self.det.image_ids[rows], pa.string()),
                         "uri": pa.array(self.det.uri[rows], pa.string())})

    def select(self, embeddings_dir: str | None, out: str, extra: dict | None = None) -> dict:
        sel = self._selection
        with self.timer("select"):
            emb = ParquetEmbeddings(embeddings_dir) if embeddings_dir else None
            picks = run_strategy(sel.strategy, make_context(self.det, self.scored, sel, emb, self.labels))
        summary = build_summary(self.cfg, self.det, self.scored, picks, self.labels, self.timer.seconds,
                                {"errors": int(self.errors.num_rows),
                                 "errors_by_reason": count_by_reason(self.errors),
                                 "errors_by_stage": count_by_stage(self.errors), **(extra or {})})
        write_parquet(child(out, "errors.parquet"), self.errors)
        write_selection_outputs(out, self.det, self.scored, picks, self.labels, summary)
        return summary
