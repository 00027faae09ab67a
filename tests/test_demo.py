"""`taast demo`'s configuration: the demo's sizes under whatever the user sets."""
from taast_ray.cli import build_config, make_parser
from taast_ray.demo import DEMO_SETTINGS


def demo_config(*argv):
    """What cmd_demo builds from its command line."""
    args = make_parser("demo").parse_args(["demo", *argv])
    return build_config(args, base=DEMO_SETTINGS)


def test_the_demo_sizes_apply_where_the_user_sets_nothing():
    cfg = demo_config()
    assert cfg.selection.budget == DEMO_SETTINGS["selection"]["budget"] == 64
    assert cfg.data.synthetic_classes == 16 and cfg.protocol.cycles == 2


def test_a_value_the_user_sets_wins_even_when_it_equals_the_product_default():
    cfg = demo_config("--set", "selection.budget=256", "--set", "protocol.cycles=3")
    assert cfg.selection.budget == 256 and cfg.protocol.cycles == 3  # the defaults, set on purpose
    assert cfg.data.synthetic_classes == 16  # the rest stays the demo's


def test_a_configuration_file_goes_over_the_demo_sizes(tmp_path):
    (tmp_path / "c.yaml").write_text("selection: {budget: 8}\ntrain: {imgsz: 640}\n")
    cfg = demo_config("--config", str(tmp_path / "c.yaml"))
    assert cfg.selection.budget == 8 and cfg.train.imgsz == 640 and cfg.train.epochs == 10
