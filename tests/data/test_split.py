"""L0 / U split, the oracle and L ∪ Q."""
import json

import pyarrow.parquet as pq

from taast_ray.data.split import merge_labels, oracle_labels, split_labelled_pool
from tests.factories import write_labels


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    train = write_labels(tmp_path / "train.json", [30, 12, 4])
    labels, pool = split_labelled_pool(train, tmp_path, tmp_path / "a", fraction=0.1, seed=21)
    again, _ = split_labelled_pool(train, tmp_path, tmp_path / "b", fraction=0.1, seed=21)
    other, _ = split_labelled_pool(train, tmp_path, tmp_path / "c", fraction=0.1, seed=42)
    l0 = {i["id"] for i in json.loads(labels.read_text())["images"]}
    u = {int(i) for i in pq.read_table(pool).column("image_id").to_pylist()}
    assert len(l0) == 3 and not l0 & u and len(l0 | u) == 30
    assert l0 == {i["id"] for i in json.loads(again.read_text())["images"]}
    assert l0 != {i["id"] for i in json.loads(other.read_text())["images"]}


def test_oracle_and_merge(tmp_path):
    train = write_labels(tmp_path / "train.json", [10, 5])
    base = oracle_labels(train, [1, 2])
    new = oracle_labels(train, [2, 3])
    merged = merge_labels(base, new)
    assert [i["id"] for i in merged["images"]] == [1, 2, 3]
    assert len({a["id"] for a in merged["annotations"]}) == len(merged["annotations"])
    assert {a["image_id"] for a in merged["annotations"]} <= {1, 2, 3}
