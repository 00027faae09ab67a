"""The strategy registry: one record per strategy is all that every layer reads.

A new strategy is one record and its pure function: registered, it validates in the
configuration, shows in ``--help``, scores under its own rarity rule, is given the embeddings it
asks for, and runs end to end through ``taast select --detections``.
"""
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import taast_ray
from taast_ray.cli import main
from taast_ray.config import ConfigError, SelectionConfig, TaastConfig
from taast_ray.experiment.config import StrategySpec
from taast_ray.selection import registry
from taast_ray.selection.strategies import diverse
from tests.test_cli_select import inputs  # noqa: F401  (the fixture: detections, labels, embeddings)


def phi_plus_one(ctx, value):
    """A strategy for this test alone: TAAST's steps on φ + 1, which ranks as φ does, so under
    taast-expected's rarity rule it must pick what taast-expected picks."""
    return diverse(ctx, value + 1.0)


NEW = registry.Strategy("test-phi-plus-one", phi_plus_one, "test double: φ + 1", registry.phi,
                        "φ(x) + 1", rarity="expected", embeds="candidates")


@pytest.fixture()
def registered(monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, NEW.name, NEW)
    return NEW


def select(det, labels, emb, out, strategy):
    return main([str(a) for a in ("select", "--detections", det, "--embeddings", emb, "--labels", labels,
                                  "--budget", 12, "--strategy", strategy, "--seed", 3, "--out", out)])


def test_a_new_record_runs_end_to_end_through_taast_select(registered, inputs, capsys):
    det, labels, emb, tmp = inputs
    assert select(det, labels, emb, tmp / "new", NEW.name) == 0
    assert select(det, labels, emb, tmp / "expected", "taast-expected") == 0
    summary = json.loads((tmp / "new" / "summary.json").read_text())
    assert summary["strategy"] == NEW.name and summary["selected"] == 12
    new = pq.read_table(tmp / "new" / "scores.parquet").to_pydict()
    expected = pq.read_table(tmp / "expected" / "scores.parquet").to_pydict()
    # its record's rarity rule scored it (taast-expected's w(x)), and φ + 1 ranks as φ does
    assert new["weight"] == expected["weight"]
    assert new["candidate"] == expected["candidate"] and new["selected"] == expected["selected"]
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    assert NEW.name in capsys.readouterr().out


def test_a_registered_name_validates_and_an_unknown_one_says_the_names(registered):
    TaastConfig(selection=SelectionConfig(strategy=NEW.name)).validate()
    assert StrategySpec.from_config(NEW.name, "strategies").pseudo_labels is True
    with pytest.raises(ConfigError, match=f"selection.strategy: must be one of .*{NEW.name}"):
        TaastConfig(selection=SelectionConfig(strategy="no-such")).validate()


def test_a_retired_record_says_why_and_has_no_function():
    for name, why in registry.retired().items():
        assert registry.REGISTRY[name].select is None
        with pytest.raises(ConfigError, match=re.escape(f"{name} was {why}")):
            TaastConfig(selection=SelectionConfig(strategy=name)).validate()


def test_records_are_consistent():
    for record in registry.REGISTRY.values():
        assert record.rarity in registry.RARITY and record.embeds in registry.EMBEDS
        if record.embeds == "candidates":
            assert record.value is not None, record.name
    assert registry.paper_order() == (registry.DEFAULT, "entropy", "random")
    assert registry.baselines() == ("random", "entropy", "coreset", "class-balanced")
    assert registry.default_arms() == ("random", "entropy", "coreset", registry.DEFAULT)  # the paper's study
    with pytest.raises(ValueError, match="ranking value"):
        registry.register(registry.Strategy("x", diverse, "no value", embeds="candidates"))


# the same words meaning something else: the program's name, a scores.parquet column, core-set's start
OTHER_MEANINGS = {"taast": {"cli.py", "lock.py"}, "entropy": {"outputs/files.py", "contracts/pool.py"},
                  "random": {"selection/strategies.py"}}


def test_each_strategy_name_is_written_once_in_the_package():
    """A strategy's name as a string literal lives in its record alone (selection/registry.py)."""
    root = Path(taast_ray.__file__).parent
    for name in registry.REGISTRY:
        found = {f"{p.relative_to(root)}" for p in root.rglob("*.py")
                 if re.search(rf"[\"']{re.escape(name)}[\"']", p.read_text())}
        assert found - OTHER_MEANINGS.get(name, set()) == {"selection/registry.py"}, (name, found)
