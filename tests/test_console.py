"""console.Progress: done/total, rate and time left on stderr, not too chatty."""
from taast_ray.console import Progress


class Clock:
    """A hand-moved clock (the real one would make the rate untestable)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_carry_rate_and_time_left_at_most_every_interval(capsys):
    clock = Clock()
    p = Progress("detect", 100, every_s=10, clock=clock)
    clock.now = 30
    p.add(10)  # the first batch after 30 s of start-up: the rate is measured from here
    clock.now = 40
    p.add(20)
    clock.now = 42
    p.add(10)  # 2 s after the last line: quiet
    clock.now = 60
    p.add(60)
    err = capsys.readouterr().err.splitlines()
    assert err == ["[taast] detect: 30/100 images (30%), 2.0 images/s, 35 s left",
                   "[taast] detect: 100 images in 1 min 00 s (1.7 images/s)"]
    p.finish()
    assert capsys.readouterr().err == ""  # the end is said once


def test_slow_work_is_per_minute_and_long_waits_in_minutes(capsys):
    clock = Clock()
    p = Progress("train", 10, unit="epochs", every_s=30, clock=clock)
    clock.now = 60
    p.update(1)
    clock.now = 120
    p.update(2)
    assert capsys.readouterr().err.strip() == "[taast] train: 2/10 epochs (20%), 1.00 epochs/min, 8 min 00 s left"


def test_nothing_to_do_says_nothing(capsys):
    Progress("embed", 0).finish()
    assert capsys.readouterr().err == ""
