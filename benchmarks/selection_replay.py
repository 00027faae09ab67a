"""Selection replay: every selection rule on the same cycle-1 detections, scored by tail lift.

In an experiment, cycle 1 of every strategy of a seed starts from the same warm-up model, so the
pool's detections (``trials/<variant>/<strategy>/seed_<s>/cycle_1/select/detections``) are the same
for all of them. This replays each rule on them — no training, so minutes instead of hours — with
several selection seeds (k-means initialisation, random's draw) per data seed, and scores each pick
against the oracle's truth: tail lift (images holding an L0-rare object among the B selected, over
random's expectation B × the pool's share) and how often c(x) is L0-rare among the selected. It
separates what a rule *catches* from what training on its picks then does to AP_rare.

The whole pool is embedded once per data seed with the experiment's embedder, through the same
per-batch function the Ray actors call (``EmbedStage``), and cached under ``--work``.

    python benchmarks/selection_replay.py --experiment runs/study_a \\
        --out benchmarks/results/study_a_tail/selection_replay.json

Last line: ``strategy=<name> tail_lift=<mean> ...`` for each rule, then the paired differences.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import taast_ray  # noqa: F401  (offline switches for Ultralytics: import before it)

# the committed selection_replay.json also holds taast-maxrare, replayed before it was dropped
RULES = ("random", "entropy", "coreset", "taast", "taast-no-rarity", "taast-no-diversity",
         "taast-expected", "taast-balanced")
SEEDED = {"random", "coreset", "taast", "taast-no-rarity", "taast-expected", "taast-balanced"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", type=Path, required=True, help="a `taast experiment` output directory")
    p.add_argument("--variant", default="default")
    p.add_argument("--strategies", nargs="+", default=list(RULES))
    p.add_argument("--selection-seeds", type=int, default=20,
                   help="selection seeds per data seed for the rules that draw (k-means, random)")
    p.add_argument("--work", type=Path, default=None, help="embeddings and selections (default EXP/replay)")
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


def replay(trial: Path, work: Path, strategies, selection_seeds: int) -> list[dict]:
    from dataclasses import replace

    from taast_ray.config import config_from_dict, read_yaml_mapping
    from taast_ray.evaluation.simulation import pool_ids, pool_truth, selection_tail
    from taast_ray.io import read_json
    from taast_ray.pipeline.precomputed import select_from_detections

    from taast_ray.loop.layout import RunLayout

    run = RunLayout(trial)
    values = {k: v for k, v in read_yaml_mapping(run.config).items() if k != "versions"}
    cfg = config_from_dict(values)
    cycle = run.cycle(1)
    data_seed = cfg.selection.seed
    labels, detections = run.labels_l0, cycle.detections
    train_gt = Path(cfg.data.train)
    truth = pool_truth(read_json(train_gt), pool_ids(cycle.pool))
    l0 = read_json(labels)
    t0 = time.perf_counter()
    embeddings = embed_pool(cfg, cycle.pool, work / f"seed_{data_seed}" / "embeddings.parquet")
    print(f"seed {data_seed}: pool embedded in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for name in strategies:
        for k in range(selection_seeds if name in SEEDED else 1):
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


def summarise(rows: list[dict], strategies, reference: str = "taast") -> dict:
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
                     "minus_" + reference: vars(paired_difference(per_seed[name], per_seed.get(reference, {})))}
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    work = args.work or args.experiment / "replay"
    trials = find_cycle1(args.experiment, args.variant)
    rows = []
    for seed, trial in sorted(trials.items()):
        rows += replay(trial, work, args.strategies, args.selection_seeds)
    summary = summarise(rows, args.strategies)
    from taast_ray.versions import software_versions

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "experiment": str(args.experiment), "variant": args.variant, "data_seeds": sorted(trials),
        "selection_seeds": args.selection_seeds, "summary": summary, "replays": rows,
        "versions": software_versions()}, indent=2, default=str) + "\n")
    for name, s in summary.items():
        t, d = s["tail_lift"], s["minus_taast"]
        print(f"strategy={name} tail_lift={t['mean']:.3f} ±{t['half_width']:.3f} (t ±{t['t_half_width']:.3f}, "
              f"n={t['n']}) minus_taast={d['mean']:+.3f} ±{d['half_width']:.3f}")


if __name__ == "__main__":
    main()
