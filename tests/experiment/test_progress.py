"""The experiment's progress line: stages done, where each trial is, time left from marker timings."""
from taast_ray.experiment.config import experiment_from_dict
from taast_ray.experiment.runner import Progress, plan
from taast_ray.io import mark_done, write_json


def score_curves(curves, cycles, seconds):
    """What runner.run_curves leaves: a score per cycle 0..cycles, then its marker."""
    for c in range(cycles + 1):
        write_json(curves / f"cycle_{c}.json", {"cycle": c})
    mark_done(curves / "_markers", "curves", {"seconds": seconds, "cycles": cycles})


def test_time_left_is_the_mean_of_each_kind_over_the_parallel_trials(tmp_path):
    exp = experiment_from_dict({"strategies": ["random", "taast"], "seeds": [1],
                                "base": {"protocol": {"cycles": 1}}})
    trials = plan(exp, tmp_path)
    progress = Progress(exp, trials, parallel=2)
    assert len(progress.expected) == 4 + 2 * (6 + 2)
    assert progress.seconds_left() == (0, None)  # nothing finished: no estimate yet

    base = trials[0].base
    mark_done(base / "data" / "_markers", "split", {"seconds": 1.0})
    for stage, seconds in (("dataset", 1.0), ("train", 100.0), ("evaluate", 10.0)):
        mark_done(base / "cycle_0" / "_markers", stage, {"seconds": seconds})
    first = trials[0].directory
    (first / "cycle_0").mkdir(parents=True)
    for stage, seconds in (("pool", 1.0), ("select", 30.0), ("annotate", 1.0), ("dataset", 2.0),
                           ("train", 60.0), ("evaluate", 6.0)):
        mark_done(first / "cycle_1" / "_markers", stage, {"seconds": seconds})
    mark_done(first / "_markers", "test", {"seconds": 4.0})
    mark_done(first / "_markers", "trial")
    # left: the second trial's 6 cycle stages (100 s) + test (4 s), over 2 trials at once
    assert progress.seconds_left() == (12, (100.0 + 4.0) / 2)

    second = trials[1].directory
    (second / "cycle_0").mkdir(parents=True)
    mark_done(second / "cycle_1" / "_markers", "pool", {"seconds": 3.0})
    assert progress.running() == ["trial 2/2 default/taast/seed_1 cycle 1 select"]
    assert progress.line() == ("experiment: 13/20 stages done, about 1 min left; "
                               "at trial 2/2 default/taast/seed_1 cycle 1 select")


def test_the_test_curve_jobs_of_shared_training_count_as_stages(tmp_path):
    exp = experiment_from_dict({"strategies": ["random"], "seeds": [1], "curve_split": "test",
                                "base": {"protocol": {"cycles": 1}},
                                "sweep": {"label_shift": {"none": None, "strong": "dirichlet:0.5"}}})
    trials = plan(exp, tmp_path)
    assert exp.shares_training and len(trials) == 2
    progress = Progress(exp, trials)
    # one warm-up (4), one shared training run (6 cycle stages + trial, no test stage), 2 curve jobs
    assert len(progress.expected) == 4 + 7 + 2
    for kind, marker in progress.expected:
        if kind != "curves":
            mark_done(marker.parent, marker.name.removesuffix(".done"), {"seconds": 1.0})
    # every training stage done: the curve jobs are still to run, and before one has, no estimate
    assert progress.seconds_left() == (11, None)
    score_curves(trials[0].curves, 1, 120.0)
    assert progress.seconds_left() == (12, 120.0)
    assert progress.line().startswith("experiment: 12/13 stages done, about 2 min left")


def _record(log, name, until=None):
    """Log start and end; with ``until``, end only once that job has ended (at most 2 minutes)."""
    import time

    with open(log, "a") as f:
        f.write(f"start {name}\n")
    deadline = time.time() + 120
    while until and f"end {until}" not in open(log).read() and time.time() < deadline:
        time.sleep(0.05)
    with open(log, "a") as f:
        f.write(f"end {name}\n")


def test_jobs_start_when_what_they_need_has_finished(tmp_path, ray_local):
    from taast_ray.experiment.runner import Job, _run_jobs

    log = str(tmp_path / "log")
    # warm-a holds its slot until trial-b has ended: trial-b must not wait for warm-a
    _run_jobs([Job(_record, (log, "warm-a", "trial-b"), "warm-a"), Job(_record, (log, "warm-b"), "warm-b"),
               Job(_record, (log, "trial-a"), "trial-a", needs="warm-a"),
               Job(_record, (log, "trial-b"), "trial-b", needs="warm-b")], parallel=2)
    lines = open(log).read().splitlines()
    assert lines.index("start trial-a") > lines.index("end warm-a")
    assert lines.index("start trial-b") > lines.index("end warm-b")
    assert lines.index("end trial-b") < lines.index("end warm-a")


def test_markers_of_fewer_cycles_count_as_stages_to_do_when_a_study_grows(tmp_path):
    """`--resume` with more cycles: the trial, test and curve markers of a finished 1-cycle study
    are stale for 2 cycles (runner.trial_finished, CurvesLayout.finished, the test stage's ``of``)."""
    one = experiment_from_dict({"strategies": ["random"], "seeds": [1], "base": {"protocol": {"cycles": 1}}})
    two = experiment_from_dict({"strategies": ["random"], "seeds": [1], "base": {"protocol": {"cycles": 2}}})
    trial = plan(one, tmp_path)[0]
    finished = Progress(one, [trial])
    for _, marker in finished.expected:
        mark_done(marker.parent, marker.name.removesuffix(".done"), {"seconds": 1.0})
    mark_done(trial.run.markers, "trial", {"seconds": 1.0, "cycles": 1})
    mark_done(trial.run.markers, "test", {"seconds": 4.0, "cycle": 1})
    assert finished.seconds_left() == (len(finished.expected), 0.0)

    grown = Progress(two, plan(two, tmp_path))
    # done: the warm-up's 4 and cycle 1's 6; to do: cycle 2's 6, the test (of cycle 2) and the trial
    assert len(grown.expected) == 4 + 12 + 2
    done, left = grown.seconds_left()
    assert done == 10 and left == 6 * 1.0 + 4.0  # the stale test marker still times its kind
    mark_done(trial.run.markers, "test", {"seconds": 4.0, "cycle": 2})
    mark_done(trial.run.markers, "trial", {"seconds": 1.0, "cycles": 2})
    assert grown.seconds_left()[0] == 12


def test_stale_curve_markers_count_as_curve_jobs_to_do(tmp_path):
    settings = {"strategies": ["random"], "seeds": [1], "curve_split": "test",
                "sweep": {"label_shift": {"none": None, "strong": "dirichlet:0.5"}}}
    one = experiment_from_dict({**settings, "base": {"protocol": {"cycles": 1}}})
    two = experiment_from_dict({**settings, "base": {"protocol": {"cycles": 2}}})
    trials = plan(one, tmp_path)
    for t in trials:  # a 1-cycle study's curves: warm-up and cycle 1 scored, marker written
        score_curves(t.curves, 1, 30.0)
    assert all(marker.exists() for kind, marker in Progress(two, plan(two, tmp_path)).expected if kind == "curves")
    grown = Progress(two, plan(two, tmp_path))
    assert grown.seconds_left()[0] == 0  # nothing of the 2-cycle run's training done, no curve job current
    assert Progress(one, trials).seconds_left()[0] == 2  # the 1-cycle study's two curve jobs are done
