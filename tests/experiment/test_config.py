"""Experiment configuration: defaults, the sweep's variants, one-line errors naming the field."""
from pathlib import Path

import pytest
import yaml

from taast_ray.errors import ConfigError
from taast_ray.experiment.config import experiment_from_dict, load_experiment, trial_config

STUDIES = sorted((Path(__file__).parents[2] / "benchmarks" / "experiments").glob("*.yaml"))


def test_strategy_shorthand_and_pseudo_label_defaults():
    exp = experiment_from_dict({"strategies": ["random", "taast", "taast-no-rarity",
                                               {"name": "plain", "strategy": "taast", "pseudo_labels": False}]})
    assert [(s.name, s.strategy, s.pseudo_labels) for s in exp.strategies] == [
        ("random", "random", False), ("taast", "taast", True), ("taast-no-rarity", "taast-no-rarity", True),
        ("plain", "taast", False)]
    assert exp.seeds == [21, 42, 63] and [v.name for v in exp.variants] == ["default"]


def test_sweep_is_the_cartesian_product():
    exp = experiment_from_dict({"strategies": ["random", "entropy"], "sweep": {
        "empty_fraction": [0.0, 0.9], "label_shift": {"none": None, "strong": "dirichlet:0.5"}}})
    assert [(v.name, v.empty_fraction, v.label_shift, v.shift_level) for v in exp.variants] == [
        ("empty00-shift_none", 0.0, None, "none"), ("empty00-shift_strong", 0.0, "dirichlet:0.5", "strong"),
        ("empty90-shift_none", 0.9, None, "none"), ("empty90-shift_strong", 0.9, "dirichlet:0.5", "strong")]

    assert not exp.shares_training and all(v.trains_as == v.name for v in exp.variants)


def test_label_shifts_scored_on_test_share_one_training_per_empty_share(tmp_path):
    exp = experiment_from_dict({"strategies": ["random"], "curve_split": "test", "sweep": {
        "empty_fraction": [0.0, 0.9], "label_shift": {"none": None, "strong": "dirichlet:0.5"}}})
    assert exp.shares_training
    assert [(v.name, v.trains_as) for v in exp.variants] == [
        ("empty00-shift_none", "empty00"), ("empty00-shift_strong", "empty00"),
        ("empty90-shift_none", "empty90"), ("empty90-shift_strong", "empty90")]
    data = {"train": "a/train.json", "val": "a/val.json", "test": "a/test.json", "images": "a/images"}
    cfg = trial_config(exp, data, exp.strategies[0], 42)
    # trained and checked on the unshifted val; the test curves are scored afterwards
    assert (cfg.data.val, cfg.data.test) == ("a/val.json", None)

def test_a_retired_strategy_fails_with_why_but_a_finished_studys_record_reads():
    with pytest.raises(ConfigError, match=r"^strategies\[1\]\.strategy: taast-maxrare was dropped after study \(a\)"):
        experiment_from_dict({"strategies": ["random", "taast-maxrare"]})
    record = experiment_from_dict({"strategies": ["random", "taast-maxrare"]}, runnable=False)
    assert [s.strategy for s in record.strategies] == ["random", "taast-maxrare"]


@pytest.mark.parametrize("values, field", [
    ({"strategies": ["random", "nope"]}, "strategies[1].strategy"),
    ({"strategies": [{"name": "x", "strategy": "taast", "pseudo": True}]}, "strategies[0].pseudo"),
    ({"strategies": ["random", "random"]}, "strategies"),
    ({"strategies": ["taast"]}, "reference"),
    ({"metric": "AR"}, "metric"),
    ({"curve_split": "train"}, "curve_split"),
    ({"parallel_trials": 0}, "parallel_trials"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [1, 1]}, "seeds"),
    ({"base": {"selection": {"budget": 0}}}, "base.selection.budget"),
    ({"base": {"protocol": {"cycles": 0}}}, "base.protocol.cycles"),
    ({"base": {"protocol": {"simulate": False}}}, "base.protocol.simulate"),
    ({"sweep": {"empty_fraction": [1.0]}}, "sweep.empty_fraction"),
    ({"sweep": {"label_shift": {"bad": "dirichlet:-1"}}}, "sweep.label_shift.bad"),
    ({"sweep": {"zipf": [1]}}, "sweep.zipf"),
    ({"base": {"data": {"train": "t.json", "val": "v.json", "images": "i"}},
      "sweep": {"empty_fraction": [0.5]}}, "sweep"),
    ({"colour": 1}, "colour"),
])
def test_bad_fields_are_named(values, field):
    with pytest.raises(ConfigError) as exc:
        experiment_from_dict(values)
    assert str(exc.value).startswith(f"{field}:")
    assert "\n" not in str(exc.value)


def test_trial_config_takes_strategy_seed_and_dataset(tmp_path):
    exp = experiment_from_dict({"strategies": ["random", "taast"], "curve_split": "test"})
    data = {"train": "a/train.json", "val": "a/val.json", "test": "a/test.json", "images": "a/images"}
    cfg = trial_config(exp, data, exp.strategies[1], 42)
    assert (cfg.selection.strategy, cfg.selection.seed, cfg.protocol.pseudo_labels) == ("taast", 42, True)
    assert cfg.data.val == "a/test.json"  # the label shift lives in the test split's prior
    assert trial_config(exp, data, exp.strategies[0], 21).protocol.pseudo_labels is False


def test_overrides_reach_nested_fields(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"strategies": ["random", "taast"]}))
    exp = load_experiment(path, ["seeds=[7]", "base.train.epochs=3"])
    assert exp.seeds == [7] and exp.base.train.epochs == 3


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_committed_study_configs_load(path):
    exp = load_experiment(path)
    assert exp.reference in {s.name for s in exp.strategies}


def test_study_a_has_every_arm_of_issue_15():
    from pathlib import Path

    from taast_ray.experiment.config import load_experiment

    study = load_experiment(Path(__file__).parents[2] / "benchmarks" / "experiments" / "study_a_taast_comparison.yaml")
    arms = {(s.name, s.strategy, s.pseudo_labels) for s in study.strategies}
    assert arms == {("random", "random", False), ("entropy", "entropy", False), ("coreset", "coreset", False),
                    ("taast", "taast", True), ("taast-no-rarity", "taast-no-rarity", True),
                    ("taast-no-diversity", "taast-no-diversity", True), ("taast-no-pseudo", "taast", False),
                    ("taast-expected", "taast-expected", True), ("taast-balanced", "taast-balanced", True)}
    b = study.base
    assert (study.seeds, b.protocol.cycles, b.model.embedder) == ([21, 42, 63], 3, "mobilenetv2-imagenet")
    assert (b.data.synthetic_images, b.data.synthetic_classes, study.zipf,
            b.data.synthetic_eval_min_instances) == (2000, 16, 0.8, 25)


def test_the_saved_configuration_reads_back_as_the_same_study(tmp_path):
    """experiment.yaml is what `--config` can be given again: no sweep stays one "default" dataset
    (it was written as `sweep: {}`, read back as a sweep of the defaults, another dataset's name)."""
    for values in ({"strategies": ["random"]},
                   {"strategies": ["random"], "sweep": {"empty_fraction": [0.0, 0.5]}}):
        exp = experiment_from_dict(values)
        again = experiment_from_dict(yaml.safe_load(yaml.safe_dump(exp.to_dict())))
        assert again.variants == exp.variants and again.to_dict() == exp.to_dict()
    assert [v.name for v in experiment_from_dict({"sweep": {}}).variants] == ["default"]  # older files

