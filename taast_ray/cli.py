"""The ``taast`` command line. Bad input or configuration: one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from taast_ray.config import (KMEANS_BACKENDS, OPTION_FIELDS, PRESET_NAMES, SYNTHETIC_FAMILIES, TaastConfig, load_config,
                              preset_settings)
from taast_ray.selection import registry
from taast_ray.errors import ConfigError, TaastError


def _ray_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress at INFO level, and show the Ray workers' own logs")


def _config_flags(parser: argparse.ArgumentParser, *, required: bool = False,
                  what: str = "YAML configuration file (see taast_ray/config.py)",
                  example: str = "selection.tau=0.7") -> None:
    parser.add_argument("--config", required=required, help=what)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"override one configuration field, e.g. --set {example} (repeatable)")


def _common(parser: argparse.ArgumentParser) -> None:
    _config_flags(parser)
    _ray_flags(parser)


def _preset_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=PRESET_NAMES,
                        help="cpu: tiny models and sizes that run on a laptop CPU, offline (YOLOv8n from "
                             "yolov8n.yaml, the ImageNet MobileNetV2 embedder, 320-px inputs, AdamW); "
                             "the config file, --set and flags override it")


def _preset(args: argparse.Namespace) -> dict:
    return preset_settings(getattr(args, "preset", None), args.command)


def _ray_overrides(args: argparse.Namespace, prefix: str = "") -> list[str]:
    """--address and -v as configuration overrides (the environment's RAY_ADDRESS is read once,
    where Ray is started: ray_env.cluster_address)."""
    out = []
    if getattr(args, "address", None):
        out.append(f"{prefix}ray.address={json.dumps(args.address)}")  # quoted: YAML reads "h:" as a mapping
    if getattr(args, "verbose", False):
        out.append(f"{prefix}ray.worker_logs=true")
    return out


def _selection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", type=int, help="B: images to select (default 256)")
    # not argparse choices: the configuration's check says why a retired name was dropped
    parser.add_argument("--strategy", metavar="{" + ",".join(registry.names()) + "}",
                        help=f"selection strategy (default {registry.DEFAULT}): " + "; ".join(
                            f"{s.name}: {s.summary}" + (", needs embeddings" if s.embeds else "")
                            for s in map(registry.strategy, registry.names())))
    parser.add_argument("--seed", type=int, help="seed of k-means++, random and the fill (default 42)")
    parser.add_argument("--tau", type=float, help="pseudo-label threshold τ of eq. 1 (default 0.8)")
    parser.add_argument("--candidate-fraction", type=float, help="q of eq. 8 (default 0.2)")
    parser.add_argument("--count-mode", choices=("images", "boxes"), help="n_c counts images or boxes")
    parser.add_argument("--kmeans-backend", choices=KMEANS_BACKENDS, help="k-means implementation")


def build_config(args: argparse.Namespace, base: dict | None = None) -> TaastConfig:
    """``base`` (a preset, or the demo's sizes) < config file < --set overrides < explicit flags;
    validated before any work starts."""
    overrides = list(args.overrides)
    for flag, field_name in OPTION_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{field_name}={value}")
    return load_config(args.config, overrides + _ray_overrides(args), base=_preset(args) if base is None else base)


def _stale_message(out):
    """Says so when a killed run's lock on ``out`` is taken over."""
    return lambda info: print(f"[taast] {out}: taking over the lock of pid {info.get('pid')} on "
                              f"{info.get('host')}, which is no longer running", file=sys.stderr)


def _locked(out):
    """The run / output directory's lock (taast_ray/lock.py), saying so when a killed run's is taken over."""
    from taast_ray.lock import run_lock

    return run_lock(out, on_stale=_stale_message(out))


def cmd_select(args: argparse.Namespace) -> int:
    from taast_ray.io import is_uri

    cfg = build_config(args)
    if args.rows_per_file < 1:
        raise ConfigError(f"--rows-per-file: must be >= 1, got {args.rows_per_file}")
    out = args.out if is_uri(args.out) else Path(args.out)
    from taast_ray.api import select

    summary = select(args.pool, detections=args.detections, embeddings=args.embeddings, labels=args.labels,
                     out=args.out, config=cfg, resume=args.resume, limit=args.limit,
                     embedding_cache=args.embedding_cache, rows_per_file=args.rows_per_file,
                     ground_truth=args.ground_truth, labelled_images=args.labelled_images,
                     on_stale_lock=_stale_message(out), out_flag="--out").summary
    print(f"selected {summary['selected']} of {summary['pool_size']} images "
          f"({summary['pseudo_labelled']} pseudo-labelled, {summary['candidates']} candidates, "
          f"{summary['filled']} filled) -> {out}")
    _warn_degenerate(summary)
    return 0


def _warn_degenerate(summary: dict) -> None:
    """A degenerate selection (no boxes, all values equal) is loud: its summary's warnings on stderr."""
    from taast_ray.console import warn

    for line in summary.get("warnings", []):
        warn(line)


def cmd_synth(args: argparse.Namespace) -> int:
    from taast_ray.data.synth import format_class_table, make_synthetic_dataset

    from taast_ray.io import check_out_dir

    _check_synth_args(args)
    check_out_dir(args.out)
    stats = make_synthetic_dataset(Path(args.out), images=args.images, classes=args.classes,
                                   seed=args.seed, image_size=args.image_size, zipf=args.zipf,
                                   empty_fraction=args.empty_fraction, label_shift=args.label_shift,
                                   eval_min_instances=args.eval_min_instances, family=args.family)
    print(format_class_table(stats))
    print(f"wrote {args.out}")
    return 0


def _check_synth_args(args: argparse.Namespace) -> None:

    if args.images < 10:
        raise ConfigError(f"--images: must be >= 10, got {args.images}")
    if args.classes < 1:
        raise ConfigError(f"--classes: must be >= 1, got {args.classes}")
    if args.image_size < 32:
        raise ConfigError(f"--image-size: must be >= 32, got {args.image_size}")
    if args.zipf < 0:
        raise ConfigError(f"--zipf: must be >= 0, got {args.zipf}")
    if not 0 <= args.empty_fraction < 1:
        raise ConfigError(f"--empty-fraction: must be in [0, 1), got {args.empty_fraction}")
    if args.eval_min_instances < 0:
        raise ConfigError(f"--eval-min-instances: must be >= 0, got {args.eval_min_instances}")


def cmd_run(args: argparse.Namespace) -> int:
    cfg = build_config(args)  # before the imports of torch and Ultralytics: bad input fails in a second
    from taast_ray.api import run

    result = run(out=args.out, config=cfg, resume=args.resume, on_stale_lock=_stale_message(Path(args.out)),
                 out_flag="--out")
    if result.awaiting_annotation:
        print(f"[taast] {result.awaiting_annotation}")
        return 3
    print(result.table)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from taast_ray.io import read_json
    from taast_ray.loop.ingest import ingest_labels
    from taast_ray.loop.layout import CycleLayout

    with _locked(Path(args.run)):  # never beside a `taast run --resume` still writing there
        path = ingest_labels(args.run, args.labels, partial=args.partial)
    report = read_json(CycleLayout(path.parent).ingest_record)
    back = f", {report['returned_to_pool']} returned to the pool" if report["returned_to_pool"] else ""
    if report.get("skipped"):
        back += f" ({len(report['skipped'])} skipped by the annotators)"
    if report.get("not_selected"):
        back += f"; {report['not_selected']} other images in the file (other cycles' or never selected) left out"
    print(f"{report['labelled']} images ({report['boxes']} boxes) stored in {path}{back}; continue with: "
          f"taast run --config {Path(args.run) / 'config.yaml'} --out {args.run} --resume")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from taast_ray.data.yolo_import import import_yolo
    from taast_ray.io import check_out_dir

    check_out_dir(args.out)
    result = import_yolo(args.source, Path(args.out), extra_pool=args.pool or [])
    for split, c in result["splits"].items():
        skipped = f" ({c['unlabelled_skipped']} without labels left out)" if c["unlabelled_skipped"] else ""
        print(f"{split}: {c['images']} labelled images, {c['boxes']} boxes{skipped}")
    print(f"pool: {result['pool']} unlabelled images; {len(result['classes'])} classes "
          f"(category ids 1..{len(result['classes'])})")
    print(f"wrote {args.out}; a production run takes {Path(args.out) / 'taast.yaml'}: "
          f"taast run --config {Path(args.out) / 'taast.yaml'} --out RUN")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from taast_ray.data.export import export_selection

    result = export_selection(args.selection, args.format, args.out, image_url=args.image_url,
                              document_root=args.document_root)
    print(f"{result['images']} images, {result['pre_annotations']} pre-annotated boxes -> {result['out']}")
    if "label_config" in result:
        print(f"labelling config -> {result['label_config']} (create the project from it: its control names "
              f"and labels match the tasks)\nimages referenced as {result['image_refs']}: "
              f"{result['label_studio_needs']}")
    return 0


def _out_resume_flags(parser: argparse.ArgumentParser, out_help: str, resume_help: str) -> None:
    """--out and --resume of the commands that write a resumable directory (run, experiment)."""
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--resume", action="store_true", help=resume_help)


def _import_export_parsers(sub) -> None:
    imp = sub.add_parser("import", help="an Ultralytics YOLO dataset to COCO JSON and a pool manifest",
                         description="Reads data.yaml as Ultralytics does. Images with a label file "
                                     "are labelled (train.json = L, val.json, test.json; category id = "
                                     "class index + 1, names kept); train images without one, and the "
                                     "YAML's pool/unlabelled entry, form pool.parquet (image_id = path "
                                     "relative to the dataset root, uri). Writes taast.yaml, the data "
                                     "section of a production `taast run`.")
    imp.add_argument("format", choices=("yolo",), help="source format")
    imp.add_argument("source", help="the dataset's data.yaml")
    imp.add_argument("--out", required=True, help="output folder")
    imp.add_argument("--pool", action="append", metavar="DIR",
                     help="an extra folder of unlabelled images for the pool (repeatable)")
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="a selection for annotation: COCO, YOLO or Label Studio tasks",
                         description="The selected images with the detector's boxes as pre-annotations: "
                                     "labelstudio (tasks, rectanglelabels in percent), coco (a JSON "
                                     "file), yolo (a folder: images/, labels/, dataset.yaml).")
    exp.add_argument("selection", help="a selection folder (taast select --out, or RUN/cycle_T/select)")
    exp.add_argument("--format", required=True, choices=("coco", "yolo", "labelstudio"))
    exp.add_argument("--out", required=True, help="output file (a folder for yolo)")
    exp.add_argument("--image-url", help="labelstudio: data.image = this prefix + image_id, for images "
                                         "served over HTTP")
    exp.add_argument("--document-root", help="labelstudio: data.image = /data/local-files/?d=<path under "
                                             "this folder>, Label Studio's local file serving")
    exp.set_defaults(func=cmd_export)


def cmd_experiment(args: argparse.Namespace) -> int:
    from taast_ray.experiment.config import load_experiment
    from taast_ray.experiment.runner import run_experiment

    from taast_ray.io import check_out_dir

    exp = load_experiment(args.config, list(args.overrides) + _ray_overrides(args, "base."), base=_preset(args))
    check_out_dir(args.out)
    _check_experiment_models(exp)
    with _locked(Path(args.out)):  # one experiment per directory: its trials share splits and warm-ups
        run_experiment(exp, Path(args.out), resume=args.resume, progress_interval=args.progress_every,
                       command=f"taast experiment --config {args.config} --out {args.out}"
                               + "".join(f" --set {o}" for o in args.overrides))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from taast_ray.experiment.merge import write_merged_report
    from taast_ray.io import check_out_dir

    check_out_dir(args.out)
    results = write_merged_report(args.parts, args.out, args.reference)
    arms = len({t["strategy"] for t in results["trials"]})
    print(f"{len(results['trials'])} trials, {arms} strategies from {len(args.parts)} part(s) -> "
          f"{Path(args.out) / 'report.md'}")
    return 0


def _check_experiment_models(exp) -> None:
    """The base's data files, detector and embedder, before Ray starts and before any file."""
    from taast_ray.loop.preflight import check_data_files, check_start_model
    from taast_ray.models.checks import check_embedder

    check_start_model(exp.base, check_data_files(exp.base))
    check_embedder(exp.base.model.embedder, exp.base.model.embedder_weights)


def cmd_nuimages(args: argparse.Namespace) -> int:
    from taast_ray.data.nuimages import nuimages_to_coco
    from taast_ray.io import write_json

    labels = nuimages_to_coco(args.root, args.version, frequency_from=args.frequency_from)
    write_json(args.out, labels)
    print(f"{len(labels['images'])} key frames, {len(labels['annotations'])} boxes, "
          f"{len(labels['categories'])} categories -> {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from taast_ray.demo import DEMO_SETTINGS, run_demo
    from taast_ray.io import check_out_dir

    cfg = build_config(args, base=DEMO_SETTINGS)
    check_out_dir(args.out)
    return run_demo(cfg, Path(args.out))


def cmd_bench(args: argparse.Namespace) -> int:
    from taast_ray.bench.run import run_bench

    return run_bench(args)


def _synth_flags(parser: argparse.ArgumentParser, images: int) -> None:
    parser.add_argument("--images", type=int, default=images, help="images over all splits")
    parser.add_argument("--classes", type=int, default=12, help="number of classes C")
    parser.add_argument("--seed", type=int, default=0, help="same seed, byte-identical output")
    parser.add_argument("--image-size", type=int, default=160, help="square image side in pixels")
    parser.add_argument("--zipf", type=float, default=1.2, help="Zipf exponent of the class prior")
    parser.add_argument("--family", choices=SYNTHETIC_FAMILIES, default="shapes",
                        help="shapes: shape × colour classes; textures: texture × outline classes "
                             "in shared colours, more scales, occlusion and clutter")
    parser.add_argument("--empty-fraction", type=float, default=0.0,
                        help="share of object-free images (class-imbalance control)")
    parser.add_argument("--label-shift", default=None,
                        help="test-split prior shift: dirichlet:ALPHA or tweak:CLASS:RHO")
    parser.add_argument("--eval-min-instances", type=int, default=25,
                        help="extra val/test images (never train) until every class has this many "
                             "objects there (0: none)")


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line and a pointer to --help, not argparse's usage block."""

    def error(self, message: str):
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def make_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``command`` (the subcommand about to run) lets a subcommand whose
    options live in a heavier module (bench) declare them only when it is the one asked for."""
    parser = OneLineParser(
        prog="taast", description="taast-ray: tail-aware active self-training selection for object "
                                  "detection, on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    select = sub.add_parser("select", help="one selection pass",
                            description="Select B images for annotation, from a live pool (YOLOv8 "
                                        "and CLIP on Ray actor pools) or from precomputed detections "
                                        "(any detector) and embeddings. core-set embeds every eligible "
                                        "image of a live pool; taast only the candidates.")
    source = select.add_mutually_exclusive_group(required=True)
    source.add_argument("--pool", help="live pool: an image folder, a parquet manifest (image_id, uri) "
                                       "or an s3:// / gs:// prefix; the detector and embedder run on Ray")
    source.add_argument("--detections", help="precomputed detections parquet (SPEC.md §3)")
    select.add_argument("--embeddings", help="with --detections: embeddings parquet (image_id, embedding)")
    select.add_argument("--weights", help="with --pool: Ultralytics weights name, local .pt, or a model "
                                          "YAML for random init (default yolov8s.pt)")
    select.add_argument("--imgsz", type=int, help="with --pool: detector input size (default 640)")
    select.add_argument("--embedder", help="open_clip architecture (default ViT-L-14-quickgelu), "
                                           "mobilenetv2-imagenet or detector (offline)")
    select.add_argument("--embedder-weights", help="open_clip tag, local file, or none (random init)")
    select.add_argument("--embedding-cache", help="with --pool: embedding cache folder "
                                                  "(default OUT/embedding_cache)")
    select.add_argument("--labelled-images", help="with --pool and an exemplar-rarity strategy: the folder "
                                                  "the labels' relative file_names are under (default: "
                                                  "the labels file's folder)")
    select.add_argument("--limit", type=int, help="with --pool: only the first N images by image_id")
    select.add_argument("--rows-per-file", "--shard-size", dest="rows_per_file", type=int, default=1000,
                        help="with --pool: images per detections file, the unit of --resume (default 1000)")
    select.add_argument("--resume", action="store_true",
                        help="with --pool: keep the detections an earlier run wrote, run only the rest")
    select.add_argument("--labels", required=True, help="labelled set L, COCO or LVIS JSON")
    select.add_argument("--out", required=True, help="output folder (with --pool also s3:// or gs://)")
    select.add_argument("--ground-truth", help="COCO/LVIS labels of the pool's images, where known (simulation): "
                                               "report.html then shows their class mix too")
    _selection_flags(select)
    _common(select)
    _preset_flag(select)
    select.set_defaults(func=cmd_select)

    synth = sub.add_parser("synth", help="make a synthetic long-tailed detection dataset",
                           description="Writes images/{train,val,test}, LVIS-format annotations and an "
                                       "Ultralytics YOLO layout.")
    synth.add_argument("--out", required=True, help="output folder")
    _synth_flags(synth, images=3000)
    synth.set_defaults(func=cmd_synth)

    for name in ("run", "cycle"):
        run = sub.add_parser(name, help="T active-learning cycles: select, annotate, fine-tune, evaluate"
                             if name == "run" else "same as run",
                             description="T cycles of select → annotate (the oracle in simulation) → "
                                         "fine-tune on L ∪ Q ∪ P with Ray Train → evaluate (LVIS AP_r/c/f, "
                                         "COCO mAP). Without data.train a synthetic set is made.")
        _out_resume_flags(run, "run directory", "skip the stages that finished")
        _common(run)
        _preset_flag(run)
        run.set_defaults(func=cmd_run)

    ingest = sub.add_parser("ingest", help="bring annotators' labels back into a waiting run",
                            description="Validates the labels (selected images only, known categories, "
                                        "sane boxes) and stores them for the waiting cycle.")
    ingest.add_argument("--labels", required=True,
                        help="a Label Studio JSON export of the tasks, or COCO/LVIS JSON of the selected images")
    ingest.add_argument("--run", required=True, help="run directory")
    ingest.add_argument("--partial", action="store_true",
                        help="accept labels for some of the selected images; the rest go back to the pool")
    ingest.set_defaults(func=cmd_ingest)
    _import_export_parsers(sub)

    experiment = sub.add_parser(
        "experiment", help="strategies × seeds × cycles, with a report",
        description="Runs every listed strategy for every seed over T cycles from the same L0/U split "
                    "and warm-up per seed (trials in parallel on Ray with parallel_trials > 1), then "
                    "writes results.json, report.md and plots/. Resumable trial by trial.")
    _config_flags(experiment, required=True, example="seeds=[21] or --set base.train.epochs=5",
                  what="experiment YAML (see taast_ray/experiment/config.py and benchmarks/experiments/)")
    _out_resume_flags(experiment, "experiment directory", "continue: finished trials and stages are skipped")
    experiment.add_argument("--progress-every", type=float, default=60.0, metavar="SECONDS",
                            help="seconds between progress lines (default 60)")
    _ray_flags(experiment)
    _preset_flag(experiment)
    experiment.set_defaults(func=cmd_experiment)

    report = sub.add_parser(
        "report", help="one report from an experiment run in parts",
        description="Merges finished experiments of the same study (same data, seeds and protocol; "
                    "each a subset of the arms) into one results.json, report.md and plots/. A part "
                    "is an experiment directory or the experiment.yaml and results.json committed from "
                    "one; the output is a part too. Checks that the parts' warm-ups were the same model.")
    report.add_argument("parts", nargs="+", metavar="PART", help="experiment or results directories")
    report.add_argument("--out", required=True, help="directory for the merged report")
    report.add_argument("--reference", help="label efficiency's reference arm (default: the first part's)")
    report.set_defaults(func=cmd_report)

    nuimages = sub.add_parser("nuimages", help="convert a nuImages split to LVIS-style COCO JSON",
                              description="Key-frame images, foreground boxes and categories of one "
                                          "nuImages version folder, for data.train / val / test.")
    nuimages.add_argument("--root", required=True, help="nuImages root (holds samples/ and v1.0-*/)")
    nuimages.add_argument("--version", required=True, help="version folder, e.g. v1.0-train")
    nuimages.add_argument("--out", required=True, help="label file to write")
    nuimages.add_argument("--frequency-from", help="converted train file whose r/c/f tags to copy (val, test)")
    nuimages.set_defaults(func=cmd_nuimages)

    bench = sub.add_parser("bench", help="images/s per stage and end to end, for 1..N actors",
                           description="Generates a JPEG pool, measures each stage alone, the fused "
                                       "decode-detect-embed pass, selection at pool scale, FAISS vs "
                                       "scikit-learn, and the Ray pass against a plain loop per actor "
                                       "count; writes a JSON and a PNG of throughput against actors.")
    if command == "bench":
        from taast_ray.bench.run import add_bench_arguments

        add_bench_arguments(bench)
        _ray_flags(bench)
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="the README's main job on this machine",
                          description="Synthetic long-tailed data, a small YOLOv8n, and full active-"
                                      "learning cycles on a local Ray instance, with a table per cycle.")
    demo.add_argument("--out", default="taast-demo", help="output folder (default taast-demo/)")
    _common(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    command = next((a for a in argv if not a.startswith("-")), None)
    return make_parser(command).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except TaastError as exc:
        print(f"taast: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine's fault (a full disk, a lost mount), still one line
        if getattr(args, "verbose", False):  # the traceback, for a bug report
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"taast: error: {exc.strerror or ' '.join(str(exc).split())}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("taast: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  the last line of defence: a bug, not a bad input
        if getattr(args, "verbose", False):
            raise
        return internal_error(exc, argv)


INTERNAL_ERROR = 70  # EX_SOFTWARE: taast itself failed, never a refused input (2)


def internal_error(exc: BaseException, argv) -> int:
    """One line for an exception no check foresaw: what failed, where the traceback is, how to
    report it. Locks and output sets are context managers and atomic renames: the exception has
    already released the one and left the other as it was."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(exc))
    where = Path(tempfile.gettempdir()) / f"taast-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    try:
        where.write_text(f"taast {' '.join(map(str, sys.argv[1:] if argv is None else argv))}\n\n{text}")
        saved = f"the traceback is in {where}"
    except OSError:
        saved = "the traceback could not be saved (run again with -v to see it)"
    detail = " ".join(str(exc).split())[:200]
    print(f"taast: internal error: {type(exc).__name__}{': ' + detail if detail else ''}; {saved}; "
          f"please report it with that file", file=sys.stderr)
    return INTERNAL_ERROR


def entry() -> None:
    """The ``taast`` command (and ``python -m taast_ray.cli``): :func:`main`, then an orderly exit.

    A driver that used Ray can otherwise exit with status 1 after its work succeeded: while the
    interpreter shuts down, garbage collection frees Ray object references after Ray's core worker
    is gone, and the core worker ends the process ("The core worker has already been shutdown ...
    The process will exit"); `ray job submit` then reports the job FAILED. Seen 1 run in 4 on a
    local multi-node cluster. So: collect garbage while Ray is up, shut Ray down, and leave
    without the interpreter's teardown. Tests call :func:`main`, which returns normally.
    """
    from taast_ray.ray_env import allow_stderr_filter

    allow_stderr_filter()  # Ray's C++ start-up notices, dropped unless -v (ray_env.RAY_NOISE)
    code = main()
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        sys.exit(code)
    import gc

    gc.collect()
    ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    from taast_ray.ray_env import flush_stderr_filter

    flush_stderr_filter()  # the lines still in the Ray-noise filter's pipe, before os._exit
    os._exit(code)


if __name__ == "__main__":
    entry()
