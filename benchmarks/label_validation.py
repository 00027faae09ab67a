"""Time ``labels_from_dict`` on a synthetic LVIS-style document (issue 31: the schema layer must stay
within about 2x the hand checks it replaced).

    python benchmarks/label_validation.py [--annotations 200000] [--module path/to/labels.py]

``--module`` times another copy of ``taast_ray/data/labels.py`` (an older one, say) on the same
document; the best and median of ``--repeat`` runs are printed, in seconds of wall clock and of
this process's CPU (steadier where the machine is shared).
"""
from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time


def synthetic_document(annotations: int, images: int, categories: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    freq = "rcf"
    return {
        "info": {"description": "synthetic"},
        "categories": [{"id": k + 1, "name": f"class_{k}", "frequency": freq[k % 3], "synset": f"s{k}"}
                       for k in range(categories)],
        "images": [{"id": i + 1, "file_name": f"{i:07d}.jpg", "width": 640, "height": 480,
                    "neg_category_ids": [], "not_exhaustive_category_ids": []} for i in range(images)],
        "annotations": [{"id": a + 1, "image_id": rng.randint(1, images), "category_id": rng.randint(1, categories),
                         "bbox": [rng.uniform(0, 500), rng.uniform(0, 400), rng.uniform(1, 100), rng.uniform(1, 80)],
                         "area": 1.0, "iscrowd": 0} for a in range(annotations)],
    }


def _labels_from_dict(module: str | None):
    if module is None:
        from taast_ray.data.labels import labels_from_dict
        return labels_from_dict
    spec = importlib.util.spec_from_file_location("labels_under_test", module)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod.labels_from_dict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--annotations", type=int, default=200_000)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--categories", type=int, default=1203)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--module", default=None)
    args = ap.parse_args()
    doc = synthetic_document(args.annotations, args.images, args.categories)
    labels_from_dict = _labels_from_dict(args.module)
    labels_from_dict(doc, "warm-up")
    times, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        labels_from_dict(doc, "synthetic.json")
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"{args.module or 'taast_ray.data.labels'}: {args.annotations} annotations, wall best {min(times):.3f} s "
          f"median {sorted(times)[len(times) // 2]:.3f} s, CPU best {min(cpu):.3f} s (the machine may be shared)")


if __name__ == "__main__":
    main()
