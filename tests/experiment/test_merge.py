"""`taast report`: merging the parts of a study, on the records of a real one (study (a) part 1,
committed under benchmarks/results/study_a_tail), split by arm. No Ray: the merge reads files."""
import copy
import json
from pathlib import Path

import pytest
import yaml

from taast_ray.errors import ConfigError, InputError
from taast_ray.experiment.merge import merge_parts, write_merged_report

STUDY = Path(__file__).parents[2] / "benchmarks" / "results" / "study_a_tail"
GRID = Path(__file__).parents[2] / "benchmarks" / "results" / "study_b_grid"


@pytest.fixture(scope="module")
def study():
    return (json.loads((STUDY / "results.json").read_text()),
            yaml.safe_load((STUDY / "experiment.yaml").read_text()))


def write_part(folder: Path, study, arms: list[str], reference: str | None = None, edit=None) -> Path:
    """A part holding ``arms`` of the study; ``edit(config, results)`` changes it before writing."""
    results, config = copy.deepcopy(study)
    results["trials"] = [t for t in results["trials"] if t["strategy"] in arms]
    config["strategies"] = [s for s in config["strategies"] if s["name"] in arms]
    config["reference"] = reference or arms[0]
    if edit:
        edit(config, results)
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "experiment.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_parts_split_by_arm_merge_into_the_whole_studys_summary(study, tmp_path):
    a = write_part(tmp_path / "a", study, ["taast"])
    b = write_part(tmp_path / "b", study, ["random", "entropy"])
    write_merged_report([a, b], tmp_path / "merged", reference="random")
    results = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert json.dumps(results["summary"], sort_keys=True) == json.dumps(study[0]["summary"], sort_keys=True)
    assert list(results["summary"]["default"]) == ["random", "entropy", "taast"]  # baselines first
    assert [(w["seed"], w["same"]) for w in results["warmups"]] == [(21, True), (42, True), (63, True)]
    report = (tmp_path / "merged" / "report.md").read_text()
    assert "| taast − entropy |" in report and "## Parts" in report
    assert "versions" not in yaml.safe_load((tmp_path / "merged" / "experiment.yaml").read_text())


def test_the_reference_defaults_to_the_first_parts_and_must_be_an_arm(study, tmp_path):
    a = write_part(tmp_path / "a", study, ["random"])
    b = write_part(tmp_path / "b", study, ["taast"])
    exp, _ = merge_parts([a, b])
    assert exp.reference == "random"
    with pytest.raises(ConfigError, match="^--reference: must name one of the listed strategies"):
        merge_parts([a, b], reference="coreset")


def test_parts_of_different_studies_fail_naming_the_field(study, tmp_path):
    a = write_part(tmp_path / "a", study, ["random"])
    b = write_part(tmp_path / "b", study, ["taast"],
                   edit=lambda c, r: c["base"]["train"].update(epochs=5))
    with pytest.raises(InputError, match=r"b: base\.train\.epochs is 5 but 10 in .*a; the parts of one report"):
        merge_parts([a, b])
    c = write_part(tmp_path / "c", study, ["taast"], edit=lambda c, r: c.update(seeds=[21, 42]))
    with pytest.raises(InputError, match=r"c: its seeds \[21, 42\] overlap .*a's \[21, 42, 63\] without being the same"):
        merge_parts([a, c])


def by_seed(seeds: list[int], pool: list[float] | None = None):
    def edit(config, results):
        config["seeds"] = seeds
        results["trials"] = [t for t in results["trials"] if t["seed"] in seeds]
        if pool is not None:
            results["classes"]["default"]["pool_objects"] = pool
    return edit


def test_parts_split_by_seed_merge_into_the_whole_studys_summary(study, tmp_path):
    """A study run one seed a part (issue 29's study (a), round 2): the union of the seeds, the
    pool's objects per class a mean over every seed's pool."""
    arms = ["random", "entropy", "taast"]
    n = len(study[0]["classes"]["default"]["ids"])
    parts = [write_part(tmp_path / "a", study, arms, "random", by_seed([21], [3.0] * n)),
             write_part(tmp_path / "b", study, arms, "random", by_seed([42, 63], [6.0] * n))]
    assert merge_parts(parts)[0].seeds == [21, 42, 63]
    write_merged_report(parts, tmp_path / "merged")
    results = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert json.dumps(results["summary"], sort_keys=True) == json.dumps(study[0]["summary"], sort_keys=True)
    assert results["classes"]["default"]["pool_objects"] == [5.0] * n  # (3 + 2 × 6) / 3
    assert results["warmups"] == []  # no seed is in two parts
    other = write_part(tmp_path / "c", study, arms, "random",
                       lambda c, r: (by_seed([84])(c, r), r["classes"]["default"]["names"].reverse()))
    with pytest.raises(InputError, match="c: its classes or pool differ"):
        merge_parts([parts[0], other])


def test_what_may_differ_between_parts(study, tmp_path):
    """Scheduling and the per-trial fields do not make another study."""
    def edit(c, r):
        c["base"]["ray"]["batch_size"] = 8
        c["parallel_trials"] = 2
        c["base"]["selection"]["strategy"] = "random"
        c["name"] = "part two"
    a = write_part(tmp_path / "a", study, ["random"])
    b = write_part(tmp_path / "b", study, ["taast"], edit=edit)
    merge_parts([a, b])


def test_a_trial_in_two_parts_or_one_name_for_two_arms_fails(study, tmp_path):
    a = write_part(tmp_path / "a", study, ["random", "taast"])
    b = write_part(tmp_path / "b", study, ["taast"])
    with pytest.raises(InputError, match="trial default/taast/seed_21 is in .* too"):
        merge_parts([a, b])

    def unpseudo(c, r):
        c["strategies"][0]["pseudo_labels"] = False
        r["trials"] = []
    c = write_part(tmp_path / "c", study, ["taast"], edit=unpseudo)
    d = write_part(tmp_path / "d", study, ["random"], edit=lambda c, r: c["strategies"].append(
        {"name": "taast", "strategy": "taast", "pseudo_labels": True}) or r.update(trials=[]))
    with pytest.raises(InputError, match="strategy 'taast' is taast with pseudo labels true there"):
        merge_parts([c, d])


def test_different_warm_ups_are_reported_not_hidden(study, tmp_path):
    def shifted(c, r):
        for t in r["trials"]:
            if t["seed"] == 42:
                t["rows"][0]["mAP"] += 0.01
    a = write_part(tmp_path / "a", study, ["random"])
    b = write_part(tmp_path / "b", study, ["taast"], edit=shifted)
    results = write_merged_report([a, b], tmp_path / "merged")
    assert [(w["seed"], w["same"]) for w in results["warmups"]] == [(21, True), (42, False), (63, True)]
    report = (tmp_path / "merged" / "report.md").read_text()
    assert "**the parts did not start from the same model** for default/seed 42" in report
    assert "different machines" not in report  # both parts hold the same versions


def test_different_warm_ups_from_different_machines_say_which(study, tmp_path):
    """Study (a) part 7: the same code and wheels trained another warm-up on another CPU."""
    def ran_on(platform, other_warm_up=False, **more):
        def edit(c, r):
            c["versions"] = {"platform": platform, "cpu": "AMD EPYC", **more}
            for t in r["trials"] if other_warm_up else []:
                t["rows"][0]["APr@L0"] += 0.004
        return edit
    a = write_part(tmp_path / "a", study, ["random"], edit=ran_on("Linux-x86_64-a"))
    b = write_part(tmp_path / "b", study, ["taast"], edit=ran_on("Linux-x86_64-b", True, cpu_capability="AVX512"))
    results = write_merged_report([a, b], tmp_path / "merged")
    assert not any(w["same"] for w in results["warmups"])
    report = (tmp_path / "merged" / "report.md").read_text()
    assert ("The parts ran on different machines (platform: Linux-x86_64-a vs Linux-x86_64-b): "
            "the same code and wheels can train a different model on another CPU.") in report
    c = write_part(tmp_path / "c", study, ["taast"], edit=ran_on("Linux-x86_64-a", True))
    write_merged_report([a, c], tmp_path / "same-machine")  # different warm-ups, one machine
    report = (tmp_path / "same-machine" / "report.md").read_text()
    assert "did not start from the same model" in report and "different machines" not in report


def test_a_part_needs_its_results_and_configuration(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "experiment.yaml").write_text("name: x\n")
    with pytest.raises(InputError, match="half: no results.json"):
        merge_parts([tmp_path / "half"])
    (tmp_path / "half" / "results.json").write_text("[]")
    with pytest.raises(InputError, match="not an experiment's results"):
        merge_parts([tmp_path / "half"])


def test_a_sweep_of_the_reference_alone_plots_without_warnings(tmp_path):
    """study (b)'s random arm alone: its efficiency panels have no line to label."""
    import warnings

    grid = (json.loads((GRID / "results.json").read_text()), yaml.safe_load((GRID / "experiment.yaml").read_text()))
    part = write_part(tmp_path / "random", grid, ["random"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_merged_report([part], tmp_path / "merged")
    assert (tmp_path / "merged" / "plots" / "efficiency_vs_empty_fraction.png").stat().st_size > 1000



def test_the_committed_study_merges_again_with_its_retired_arm(tmp_path):
    """study (a)'s six committed parts, taast-maxrare's among them (retired since: an experiment
    may no longer run it), merge into exactly the committed all/ summary."""
    parts = [STUDY, *(STUDY / p for p in ("part2", "part3-no-rarity", "part4-no-diversity",
                                           "part5-expected", "part6-maxrare"))]
    write_merged_report(parts, tmp_path / "all", reference="random")
    merged = json.loads((tmp_path / "all" / "results.json").read_text())
    committed = json.loads((STUDY / "all" / "results.json").read_text())
    assert json.dumps(merged["summary"], sort_keys=True) == json.dumps(committed["summary"], sort_keys=True)
    assert "taast-maxrare" in merged["summary"]["default"] and all(w["same"] for w in merged["warmups"])
