"""Regenerate the stored selection case (run from the repository root, only when a change of the
selection is intended and explained in its commit):

    .venv/bin/python -m tests.regression.make_case
    .venv/bin/python -m tests.regression.make_case --add   # only the strategies not stored yet

Inputs are seeded factories' files; the expected outputs are what ``taast select --detections``
wrote for each strategy. tests/regression/test_stored_selection.py compares against them.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from tests.factories import write_detections, write_embeddings, write_labels

CASE = Path(__file__).parent / "case"
STRATEGIES = ("taast", "entropy", "random", "coreset", "taast-no-rarity", "taast-no-diversity",
              "taast-expected", "taast-balanced", "class-balanced")
ARGS = ("--budget", "12", "--seed", "5", "--tau", "0.8")


def write_inputs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    det = write_detections(folder / "detections.parquet", 160, 6, seed=11, confident_share=0.2)
    ids = pq.read_table(det).column("image_id").to_pylist()
    write_labels(folder / "labels.json", [40, 20, 8, 3, 1, 0], seed=3)
    write_embeddings(folder / "embeddings.parquet", ids + [str(i) for i in range(1, 41)], seed=4)


def select(folder: Path, strategy: str, out: Path) -> int:
    from taast_ray.cli import main

    return main(["select", "--detections", str(folder / "detections.parquet"), "--embeddings",
                 str(folder / "embeddings.parquet"), "--labels", str(folder / "labels.json"),
                 "--strategy", strategy, *ARGS, "--out", str(out)])


def main(add_only: bool = False) -> None:
    """Everything anew, or with ``add_only`` the stored inputs kept and only the strategies
    without stored outputs run (the others' files are not touched)."""
    if not add_only:
        shutil.rmtree(CASE, ignore_errors=True)
        write_inputs(CASE)
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in STRATEGIES:
            if add_only and (CASE / strategy).exists():
                continue
            out = Path(tmp) / strategy
            assert select(CASE, strategy, out) == 0
            for name in ("selection.parquet", "scores.parquet"):
                (CASE / strategy).mkdir(exist_ok=True)
                shutil.copyfile(out / name, CASE / strategy / name)


if __name__ == "__main__":
    import sys

    main(add_only="--add" in sys.argv[1:])
