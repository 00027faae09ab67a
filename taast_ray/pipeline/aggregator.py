"""The central aggregator (SPEC.md §5): one actor holds the pool's per-image scores.

It reads the detector's files from the run directory (never through the driver) in one streaming
pass that keeps per-image scalars only (its memory does not hold the score rows), adds the
labelled set's class counts to the pseudo labels' counts, computes weights and φ, chooses the
images to embed, and after embedding runs k-means and the pick — all through the selection core.
The driver only ever sees counts and the candidate table.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq

from taast_ray.config import TaastConfig, config_from_dict
from taast_ray.data.labels import load_labels
from taast_ray.error_records import count_by_reason, count_by_stage, errors_table
from taast_ray.errors import InputError
from taast_ray.io import bare_paths, list_parquet, read_json
from taast_ray.contracts.embeddings import ParquetEmbeddings
from taast_ray.selection.kmeans import resolve_backend
from taast_ray.outputs.files import write_failed_outputs, write_selection_outputs
from taast_ray.contracts.pool import stream_pool
from taast_ray.pipeline.precomputed import (StageTimer, build_summary, make_context, pseudo_threshold,
                                            score_detections)
from taast_ray.selection import registry
from taast_ray.stages.device import granted_gpus
from taast_ray.versions import software_versions

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
            fs, paths = bare_paths(files)
            try:
                self.det = stream_pool(files, self.labels.num_classes, pseudo_threshold(self.labels, self.cfg.selection),
                                       failed=failed,
                                       rule=registry.strategy(self.cfg.selection.strategy).rarity_rule)
            except InputError:  # every record failed (all unreadable): not a bad file, a bad pool
                rows = sum(pq.read_metadata(f, filesystem=fs).num_rows for f in paths)
                if not failed or sum(t.num_rows for t in failed) != rows:
                    raise
                self.det = None
            self.errors = self._errors(pa.concat_tables(failed, promote_options="default") if failed else None)
            scored = 0 if self.det is None else int(self.det.num_images)
            if scored:
                self.scored = score_detections(self.det, self.labels, self.cfg.selection)
        return {"pool_size": scored + int(self.errors.num_rows),
                "scored": scored, "errors": int(self.errors.num_rows),
                "pseudo_labelled": int(self.scored.pseudo.sum()) if scored else 0,
                "converted": int(self.det.converted) if scored else 0,
                "errors_by_reason": count_by_reason(self.errors)}

    def publish_failed(self, out: str, reason: str, extra: dict | None = None) -> None:
        """No selection possible (too few readable images): publish errors.parquet and a summary."""
        scored = 0 if self.det is None else int(self.det.num_images)
        summary = {"status": "failed", "reason": reason, "strategy": self.cfg.selection.strategy,
                   "budget": self.cfg.selection.budget, "pool_size": scored + int(self.errors.num_rows),
                   "scored": scored, "errors": int(self.errors.num_rows),
                   "errors_by_reason": count_by_reason(self.errors), "errors_by_stage": count_by_stage(self.errors),
                   "selected": 0,
                   **(extra or {}), "timings_s": self.timer.seconds, "versions": software_versions(),
                   "config": self.cfg.to_dict()}
        write_failed_outputs(out, self.errors, summary)
        if self.det is not None:
            self.det.close()

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
        rows = registry.strategy(sel.strategy).rows_to_embed(make_context(self.det, self.scored, sel, None,
                                                                             self.labels))
        return pa.table({"image_id": pa.array(self.det.ids(rows), pa.string()),
                         "uri": pa.array(self.det.uris(rows), pa.string())})

    def select(self, embeddings_dir: str | None, out: str, extra: dict | None = None,
               truth_path: str | None = None) -> dict:
        """Pick, then publish the output set; ``truth_path``: the pool's ground truth (simulation),
        for report.html's class mix."""
        sel = self._selection
        with self.timer("select"):
            emb = ParquetEmbeddings(embeddings_dir) if embeddings_dir else None
            picks = registry.strategy(sel.strategy).run(make_context(self.det, self.scored, sel, emb, self.labels))
        summary = build_summary(self.cfg, self.det, self.scored, picks, self.labels, self.timer.seconds,
                                {"errors": int(self.errors.num_rows),
                                 "errors_by_reason": count_by_reason(self.errors),
                                 "errors_by_stage": count_by_stage(self.errors), **(extra or {})})
        try:
            write_selection_outputs(out, self.det, self.scored, picks, self.labels, summary, errors=self.errors,
                                    truth=read_json(truth_path) if truth_path else None)
        finally:
            self.det.close()  # the box spool: the actor is killed after this call
        return summary
