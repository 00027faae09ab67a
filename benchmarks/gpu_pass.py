"""The per-image work of a selection pass on one GPU, without Ray (SPEC.md §8, last bullet).

Batches of 1280x720 JPEG bytes go through the functions the Ray actors call: one batched nvJPEG
decode onto the GPU, YOLOv8 (letterbox on the GPU, bf16, batched NMS keeping the score rows, one
copy back) on every image, and CLIP (224-px crop on the GPU, bf16) on the batch's top share by φ,
fed from the same decoded tensors. Reported: each step alone, the fused pass with 1..N worker
threads (one CUDA stream each), and the rate against the compute floor: images/s if every model
FLOP ran at --peak-tflops (FLOPs counted by torch; YOLOv8-s 28.6 GFLOP at 640 px, ViT-L/14
162 GFLOP at 224 px; 800 TFLOP/s is the bf16 matrix-product rate measured on these H100s).

Imports torch, torchvision, numpy, pyarrow, Pillow, Ultralytics, open_clip and Ray-free parts of
taast_ray only, from this checkout (no install needed). On a GPU machine without network: random
weights (the FLOPs are those of the real models), and carry what its Python lacks as wheels,
e.g. ultralytics, ultralytics-thop, open_clip_torch, ftfy, wcwidth (see benchmarks/README.md).

    python benchmarks/gpu_pass.py --json benchmarks/results/gpu_pass_h100.json
    python benchmarks/gpu_pass.py --device cpu --images 32 --size 320x180 --batch-size 8 \\
        --weights yolov8n.yaml --imgsz 160 --embedder taast-tiny-ViT --workers 1   # a smoke run

ends with one line `images_per_s=<float> floor_images_per_s=<float> fraction_of_floor=<float>`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's taast_ray

import taast_ray  # noqa: E402  (offline switches before Ultralytics)
from taast_ray.bench.data import frame, jpeg_payloads  # noqa: E402
from taast_ray.bench.fused import batches, compute_floor, gflop_per_image, run_fused, run_steps, warm_up  # noqa: E402
from taast_ray.bench.measure import hardware  # noqa: E402
from taast_ray.bench.options import GPU_DEFAULTS, add_pass_arguments, frame_size, int_list, load_models  # noqa: E402
from taast_ray.io import write_json  # noqa: E402
from taast_ray.versions import software_versions  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8192, help="images per timed pass (default 8192)")
    parser.add_argument("--distinct", type=int, default=64, help="distinct JPEGs the pool cycles through")
    parser.add_argument("--warmup-batches", type=int, default=3, help="untimed batches first (default 3)")
    parser.add_argument("--peak-tflops", type=float, default=800.0, help="for the compute floor (default 800)")
    parser.add_argument("--json", type=Path, help="write the results here")
    add_pass_arguments(parser, GPU_DEFAULTS)
    args = parser.parse_args(argv)
    width, height = frame_size(args.size)

    models = load_models(args)
    print(f"{args.images} JPEGs {width}x{height} on {models.device}: {args.weights} at {args.imgsz} px, "
          f"{args.embedder} on {args.share:.0%}, batches of {args.batch_size}", flush=True)
    payloads = jpeg_payloads(args.images, width, height, args.seed, args.distinct)
    work = batches([f"frame_{i:06d}" for i in range(args.images)], payloads, args.batch_size)
    warm_up(work[:args.warmup_batches], models, args.share)
    steps = run_steps(work, models, args.share)
    print("each step alone, pool images/s: " + ", ".join(
        f"{k} {v['pool_images_per_s']}" for k, v in steps.items()), flush=True)
    fused = []
    for workers in int_list(args.workers, "--workers"):
        fused.append(run_fused(work, models, args.share, workers=workers))
        print(f"fused, {workers} worker(s): {fused[-1]['images_per_s']} images/s, "
              f"{fused[-1]['boxes_per_image']} boxes/image, {fused[-1]['embedded_share']:.1%} embedded", flush=True)
    best = max(f["images_per_s"] for f in fused)
    gflops = gflop_per_image(models, frame(0, width, height, args.seed))
    floor = compute_floor(gflops, args.share, args.peak_tflops, best)
    report = {"settings": vars(args) | {"json": str(args.json) if args.json else None},
              "hardware": hardware(), "versions": software_versions(), "gflop": gflops,
              "steps": steps, "fused": fused, "best_images_per_s": best, "floor": floor}
    if args.json:
        write_json(args.json, report)
    print(f"images_per_s={best} floor_images_per_s={floor['floor_images_per_s']} "
          f"fraction_of_floor={floor['fraction_of_floor']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
