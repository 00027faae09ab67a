"""Does a box's feature know its rare class when the detector's classifier does not? (issue 29)

On a `taast run`'s warm-up, every ground-truth box of the pool (the oracle's truth) is given the
detector's classification feature at its best-matching anchor (``Detector.labelled_box_features``,
the feature the exemplar prototypes are built from), and named twice: by the detector's own
linear class layer on that feature (sigmoid(W f + b), argmax; the level whose anchor it is), and
by the nearest class mean of L0's boxes (``selection/exemplar.py``, T = 0.1). Reported per L0
group (r: < 10 L0 images, the paper's rare), with how often each calls a box of another group
L0-rare. This isolates the class evidence in the features from the detector's localisation.

    python benchmarks/exemplar_probe.py --runs runs/replay/shapes_{21,42,63} --out benchmarks/results/replay/probe_shapes.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import taast_ray  # noqa: F401  (offline switches for Ultralytics: import before it)


def probe(run_dir: Path, pool_images: int) -> dict:
    import numpy as np
    import torch

    from taast_ray.data.frequency import L0_RARE_BELOW
    from taast_ray.data.labels import labels_from_dict, load_labels
    from taast_ray.io import read_json
    from taast_ray.loop.cycle import saved_run_config
    from taast_ray.loop.layout import RunLayout
    from taast_ray.loop.sources import resolve_dataset
    from taast_ray.models.detector import Detector
    from taast_ray.pipeline.exemplars import box_features, labelled_boxes
    from taast_ray.selection.exemplar import box_posterior, class_prototypes

    run = RunLayout(run_dir)
    cfg = saved_run_config(run_dir)
    l0 = load_labels(run.labels_l0)
    data = resolve_dataset(cfg, run)  # the run's splits: data.train/images, or its synthetic set
    train = read_json(data.train)
    pool_ids = set(__import__("pyarrow.parquet", fromlist=["x"]).read_table(run.pool, columns=["image_id"])
                   .column(0).to_pylist())
    images = [i for i in train["images"] if str(i["id"]) in pool_ids][:pool_images]
    keep = {i["id"] for i in images}
    pool = labels_from_dict({**train, "images": images,
                             "annotations": [a for a in train["annotations"] if a["image_id"] in keep]}, "pool")
    detector = Detector(str(run.warmup.weights), imgsz=cfg.model.input_size, device="cpu",
                        num_classes=l0.num_classes, box_features=True)
    fl, kl, _, _ = box_features(detector, labelled_boxes(l0, data.images))
    fp, kp, level, _ = box_features(detector, labelled_boxes(pool, data.images))
    protos = class_prototypes(fl, kl, l0.num_classes, 0.1)
    ncm = box_posterior(fp, protos).argmax(1)
    # the linear layer: each feature through its own level's class convolution (argmax of the
    # logits is the argmax of the sigmoid scores)
    with torch.no_grad():
        logits = np.stack([fp @ layer[-1].weight.numpy()[:, :, 0, 0].T + layer[-1].bias.numpy()
                           for layer in detector.model.model[-1].cv3])
    linear = logits[level, np.arange(len(fp))].argmax(1)
    rare_class = l0.class_counts("images") < L0_RARE_BELOW
    out = {"run": str(run_dir), "seed": cfg.selection.seed, "l0_boxes": int(len(kl)),
           "pool_boxes": int(len(kp)), "rare_classes": int(rare_class.sum()),
           "rare_classes_with_exemplars": int((rare_class & protos.present).sum())}
    is_rare = rare_class[kp]
    for name, pred in (("linear", linear), ("nearest_mean", ncm)):
        out[name] = {"accuracy": float((pred == kp).mean()),
                     "accuracy_rare": float((pred[is_rare] == kp[is_rare]).mean()) if is_rare.any() else None,
                     "called_rare_when_rare": float(rare_class[pred[is_rare]].mean()) if is_rare.any() else None,
                     "called_rare_when_not": float(rare_class[pred[~is_rare]].mean())}
    out["rare_pool_boxes"] = int(is_rare.sum())
    print(f"seed {out['seed']}: {out['pool_boxes']} boxes ({out['rare_pool_boxes']} L0-rare): "
          + "; ".join(f"{n} acc {out[n]['accuracy']:.3f}, on rare {out[n]['accuracy_rare']:.3f}, "
                      f"rare called rare {out[n]['called_rare_when_rare']:.3f}, "
                      f"others called rare {out[n]['called_rare_when_not']:.3f}" for n in ("linear", "nearest_mean")),
          flush=True)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, nargs="+", required=True)
    p.add_argument("--pool-images", type=int, default=600)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from taast_ray.versions import software_versions

    rows = [probe(r, args.pool_images) for r in args.runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"probes": rows, "versions": software_versions()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
