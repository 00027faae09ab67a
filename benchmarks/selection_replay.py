"""Selection replay: every selection rule on the same detections of the same model, scored by tail lift.

Where a cycle's selection starts from one model — the warm-up on L0, shared by every strategy of a
data seed — the pool's detections are the same for every rule. This replays each rule on them, no
training, so minutes instead of hours, with several selection seeds (k-means initialisation,
random's draw) per data seed, and scores each pick against the oracle's truth: tail lift (images
holding an L0-rare object among the B selected, over random's expectation B × the pool's share)
and how often c(x) is L0-rare among the selected. It tests the selection mechanism directly,
apart from what training on its picks then does to AP_rare.

Two sources of warm-ups:
- ``--runs DIR ...``: `taast run` directories (``protocol.cycles: 0`` is enough: the warm-up and
  nothing else; benchmarks/results/replay/warmup_*.yaml), one per data seed. The pool is detected
  here with the warm-up model through the detector actors' per-batch function (``DetectStage``),
  with L0's exemplar prototypes, so exemplar rules replay too.
- ``--experiment DIR``: a `taast experiment`, whose trials' cycle-1 detections are read.

The whole pool is embedded once per data seed with the configuration's embedder, through the same
per-batch function the Ray actors call (``EmbedStage``), and cached under ``--work``.

    python benchmarks/selection_replay.py --runs runs/replay/shapes_21 runs/replay/shapes_42 \\
        runs/replay/shapes_63 --out benchmarks/results/replay/shapes.json

Last lines: ``strategy=<name> tail_lift=<mean> ...`` for each rule, with its paired differences
from taast and entropy.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import taast_ray  # noqa: F401  (offline switches for Ultralytics: import before it)

# the committed selection_replay.json also holds taast-maxrare, replayed before it was dropped
RULES = ("random", "entropy", "coreset", "class-balanced", "taast", "taast-no-rarity", "taast-no-diversity",
         "taast-expected", "taast-balanced", "taast-exemplar")
UNSEEDED = {"entropy", "class-balanced", "taast-no-diversity"}  # top-B by a value: one selection per data seed
REFERENCES = ("taast", "entropy")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", type=Path, help="a `taast experiment` output directory")
    source.add_argument("--runs", type=Path, nargs="+", help="`taast run` directories, one per data seed "
                                                              "(their warm-up models)")
    p.add_argument("--variant", default="default")
    p.add_argument("--strategies", nargs="+", default=list(RULES))
    p.add_argument("--selection-seeds", type=int, default=20,
                   help="selection seeds per data seed for the rules that draw (k-means, random)")
    p.add_argument("--work", type=Path, default=None,
                   help="detections, embeddings and selections (default EXP/replay, or the first run's parent/replay)")
    p.add_argument("--tau-rare", nargs="*", type=float, default=[0.6, 0.4, 0.25],
                   help="τ_rare values whose pseudo labels are measured per L0 group, beside the paper's τ")
    p.add_argument("--out", type=Path, required=True, help="JSON with every replay and the summary")
    return p.parse_args(argv)


def find_cycle1(exp: Path, variant: str) -> dict[int, Path]:
    """Data seed → one trial directory whose cycle 1 has the warm-up model's detections."""
    from taast_ray.experiment.layout import ExperimentLayout
    from taast_ray.loop.layout import RunLayout

    found: dict[int, Path] = {}
    for trial in sorted(ExperimentLayout(exp).trials(variant).glob("*/seed_*")):
        if RunLayout(trial).cycle(1).detections.is_dir():
            found.setdefault(int(trial.name.split("_")[1]), trial)
    if not found:
        raise SystemExit(f"{exp}/trials/{variant}: no trial has cycle_1/select/detections yet")
    return found


def embed_pool(cfg, pool: Path, target: Path, batch: int = 64) -> Path:
    """Every pool image through EmbedStage (the Ray actor's per-batch call), to one parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taast_ray.stages.embed import EmbedStage

    if target.exists():
        return target
    table = pq.read_table(pool, columns=["image_id", "uri"])
    stage = EmbedStage(cfg.model.embedder, cfg.model.embedder_weights, device="cpu")
    parts = []
    ids, uris = table.column("image_id").to_pylist(), table.column("uri").to_pylist()
    for a in range(0, len(ids), batch):
        rows = {"image_id": ids[a:a + batch], "uri": uris[a:a + batch],
                "bytes": [Path(u).read_bytes() for u in uris[a:a + batch]]}
        out = stage(rows)
        if any(out.column("error").to_pylist()):
            raise SystemExit(f"{pool}: an image did not embed: {out.column('error').to_pylist()}")
        parts.append(out.select(["image_id", "embedding"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(parts), target)
    return target


def detect_pool(cfg, weights: Path, pool: Path, labels: Path, images: Path, target: Path,
                batch: int = 32) -> tuple[Path, dict]:
    """Every pool image through DetectStage (the Ray actor's per-batch call) with the warm-up model
    and L0's exemplar prototypes, to one parquet file; the prototypes' record."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taast_ray.data.labels import load_labels
    from taast_ray.io import read_json, write_json
    from taast_ray.pipeline.exemplars import build_prototypes
    from taast_ray.stages.detect import DetectStage

    done = target / "detections.parquet"
    if done.exists():
        return done, read_json(target / "exemplars.json")
    l0 = load_labels(labels)
    t0 = time.perf_counter()
    protos, record = build_prototypes(weights, l0, images, imgsz=cfg.model.input_size, device="cpu",
                                      temperature=cfg.selection.exemplar_temperature)
    stage = DetectStage(str(weights), imgsz=cfg.model.input_size, conf=cfg.selection.det_conf,
                        num_classes=l0.num_classes, device="cpu", exemplars=protos.to_dict())
    stage.ensure_setup()
    table = pq.read_table(pool, columns=["image_id", "uri"])
    ids, uris = table.column("image_id").to_pylist(), table.column("uri").to_pylist()
    t1 = time.perf_counter()
    parts = [stage.process({"image_id": ids[a:a + batch], "uri": uris[a:a + batch],
                            "bytes": [Path(u).read_bytes() for u in uris[a:a + batch]]})
             for a in range(0, len(ids), batch)]
    record["pool_images"] = len(ids)
    record["detect_seconds"] = round(time.perf_counter() - t1, 2)
    record["prototype_seconds"] = round(t1 - t0, 2)
    target.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(parts), target / "detections.tmp")
    write_json(target / "exemplars.json", record)
    (target / "detections.tmp").rename(done)
    return done, record


class Source:
    """One data seed's warm-up: its configuration, L0, pool, truth and the detections to replay on."""

    def __init__(self, run_dir: Path, work: Path, *, from_experiment: bool):
        from taast_ray.loop.cycle import saved_run_config
        from taast_ray.loop.layout import RunLayout
        from taast_ray.loop.sources import resolve_dataset

        run = RunLayout(run_dir)
        self.cfg = saved_run_config(run_dir)
        self.seed = self.cfg.selection.seed
        self.labels = run.labels_l0
        self.work = work / f"seed_{self.seed}"
        data = resolve_dataset(self.cfg, run)  # the run's splits: data.train/images, or its synthetic set
        images, self.train_gt, self.exemplars = data.images, data.train, None
        if from_experiment:  # the trial's own cycle-1 pass
            self.pool, self.detections = run.cycle(1).pool, run.cycle(1).detections
        else:
            self.pool = run.pool
            self.detections, self.exemplars = detect_pool(self.cfg, run.warmup.weights, run.pool, run.labels_l0,
                                                          images, self.work / "detections")


def replay(src: Source, strategies, selection_seeds: int) -> list[dict]:
    from dataclasses import replace

    from taast_ray.evaluation.simulation import pool_ids, pool_truth, selection_tail
    from taast_ray.io import read_json
    from taast_ray.pipeline.precomputed import select_from_detections

    cfg, data_seed, work = src.cfg, src.seed, src.work.parent
    labels, detections = src.labels, src.detections
    truth = pool_truth(read_json(src.train_gt), pool_ids(src.pool))
    l0 = read_json(labels)
    t0 = time.perf_counter()
    embeddings = embed_pool(cfg, src.pool, work / f"seed_{data_seed}" / "embeddings.parquet")
    print(f"seed {data_seed}: pool embedded in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for name in strategies:
        for k in range(1 if name in UNSEEDED else selection_seeds):
            out = work / f"seed_{data_seed}" / name / f"sel_{k}"
            run_cfg = replace(cfg, selection=replace(cfg.selection, strategy=name, seed=1000 * data_seed + k))
            t0 = time.perf_counter()
            if (out / "summary.json").exists():  # a finished replay (outputs are written last, renamed)
                summary = read_json(out / "summary.json")
            else:
                shutil.rmtree(out, ignore_errors=True)
                summary = select_from_detections(run_cfg, detections, labels, out, embeddings=embeddings)
            tail = selection_tail(out, truth, l0)
            rows.append({"data_seed": data_seed, "strategy": name, "selection_seed": k,
                         "seconds": round(time.perf_counter() - t0, 2),
                         "candidates": summary.get("candidates"),
                         **{key: tail.get(key) for key in (
                             "tail_lift", "tail_lift_objects", "rare_images_selected", "rare_images_random",
                             "pool_rare_images", "pool_images", "candidate_rare_selected",
                             "candidate_rare_share", "pool_rare_image_share")}})
            print(f"seed {data_seed} {name} #{k}: tail lift {tail['tail_lift']:.2f} "
                  f"({tail['rare_images_selected']}/{tail['rare_images_random']:.1f})", flush=True)
    return rows


def pseudo_quality(src: Source, tau_rare_values) -> list[dict]:
    """Eq. 1's P on the warm-up's detections, per τ_rare (None: the paper's τ for every class):
    the pseudo labels' precision and recall per L0 group against the oracle's truth. P does not
    depend on the strategy; entropy's pass (no embeddings) writes it."""
    from dataclasses import replace

    from taast_ray.evaluation.pseudo import pseudo_label_quality
    from taast_ray.evaluation.simulation import pool_ids, pool_truth
    from taast_ray.evaluation.tail import l0_frequency
    from taast_ray.io import read_json
    from taast_ray.pipeline.precomputed import select_from_detections

    truth = pool_truth(read_json(src.train_gt), pool_ids(src.pool))
    frequency = l0_frequency(read_json(src.labels))
    rows = []
    for value in tau_rare_values:
        out = src.work / "pseudo" / f"tau_rare_{value}"
        if not (out / "summary.json").exists():
            cfg = replace(src.cfg, selection=replace(src.cfg.selection, strategy="entropy", tau_rare=value))
            select_from_detections(cfg, src.detections, src.labels, out)
        quality = pseudo_label_quality(read_json(out / "pseudo_labels.json"), truth, frequency)
        rows.append({"data_seed": src.seed, "tau": src.cfg.selection.tau, "tau_rare": value,
                     "pseudo_images": read_json(out / "summary.json")["pseudo_labelled"], **quality})
        print(f"seed {src.seed} tau_rare={value}: " + ", ".join(
            f"{g} P {q['precision'] if q['precision'] is None else round(q['precision'], 3)} "
            f"R {q['recall'] if q['recall'] is None else round(q['recall'], 3)} ({q['pseudo_boxes']} boxes)"
            for g, q in quality.items()), flush=True)
    return rows


def summarise(rows: list[dict], strategies, references=REFERENCES) -> dict:
    from taast_ray.experiment.stats import mean_ci, paired_difference

    per_seed: dict[str, dict[int, float]] = {}
    for name in strategies:
        by: dict[int, list[float]] = {}
        for r in rows:
            if r["strategy"] == name and r["tail_lift"] is not None:
                by.setdefault(r["data_seed"], []).append(r["tail_lift"])
        per_seed[name] = {s: sum(v) / len(v) for s, v in by.items()}
    out = {}
    for name in strategies:
        within = [r["tail_lift"] for r in rows if r["strategy"] == name and r["tail_lift"] is not None]
        out[name] = {"tail_lift": vars(mean_ci(list(per_seed[name].values()))),
                     "tail_lift_by_seed": per_seed[name],
                     "tail_lift_all_selections": vars(mean_ci(within)),
                     **{"minus_" + ref: vars(paired_difference(per_seed[name], per_seed.get(ref, {})))
                        for ref in references}}
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.experiment is not None:
        work = args.work or args.experiment / "replay"
        sources = [Source(trial, work, from_experiment=True)
                   for _, trial in sorted(find_cycle1(args.experiment, args.variant).items())]
    else:
        work = args.work or args.runs[0].parent / "replay"
        sources = [Source(run, work, from_experiment=False) for run in args.runs]
    rows, pseudo = [], []
    for src in sources:
        pseudo += pseudo_quality(src, [None, *args.tau_rare])
        rows += replay(src, args.strategies, args.selection_seeds)
    summary = summarise(rows, args.strategies)
    from taast_ray.versions import software_versions

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "experiment": str(args.experiment) if args.experiment else None,
        "runs": [str(r) for r in args.runs or []], "variant": args.variant,
        "data_seeds": [src.seed for src in sources], "selection_seeds": args.selection_seeds,
        "exemplars": {src.seed: src.exemplars for src in sources if src.exemplars},
        "summary": summary, "pseudo_labels": pseudo, "replays": rows, "versions": software_versions()}, indent=2, default=str) + "\n")
    for name, s in summary.items():
        t = s["tail_lift"]
        print(f"strategy={name} tail_lift={t['mean']:.3f} ±{t['half_width']:.3f} (t ±{t['t_half_width']:.3f}, "
              f"n={t['n']}) " + " ".join(f"{k}={d['mean']:+.3f} ±{d['half_width']:.3f}"
                                         for k, d in s.items() if k.startswith("minus_")))


if __name__ == "__main__":
    main()
