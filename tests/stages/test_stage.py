"""stage.py: a stage loads its model once, on its first call in a plain loop or as its actor starts;
the detector and the embedder declare their resources apart."""
import pytest

from taast_ray.stages.stage import Stage, StageResources, actor_class


class Doubling(Stage):
    """A toy model stage: its "model" is a factor, loaded in setup."""
    name = "double"
    loads = 0

    def __init__(self, factor: int):
        self.factor = factor

    def setup(self):
        Doubling.loads += 1
        self.model = self.factor

    def process(self, batch):
        return {"x": [v * self.model for v in batch["x"]]}


@pytest.fixture(autouse=True)
def _no_loads():
    Doubling.loads = 0


def test_a_plain_loop_sets_up_on_the_first_call_only():
    stage = Doubling(2)
    assert Doubling.loads == 0 and not hasattr(stage, "model")  # building loads nothing
    assert [stage({"x": [1, 2]}), stage({"x": [3]})] == [{"x": [2, 4]}, {"x": [6]}]
    assert Doubling.loads == 1
    assert stage.ensure_setup() is stage and Doubling.loads == 1


def test_the_actor_class_sets_up_in_its_constructor_and_is_named_after_the_stage():
    import ray.cloudpickle as cloudpickle

    cls = actor_class(Doubling)
    assert cls.__name__ == "double" and issubclass(cls, Doubling)
    stage = cls(factor=3)  # as Ray Data builds it: fn_constructor_kwargs
    assert Doubling.loads == 1 and stage({"x": [1]}) == {"x": [3]} and Doubling.loads == 1
    shipped = cloudpickle.loads(cloudpickle.dumps(cls))  # how the class reaches the actors
    assert shipped(factor=5)({"x": [2]}) == {"x": [10]}


def test_a_stage_without_a_model_asks_for_one_cpu():
    assert Doubling.resources(gpu=True) == Doubling.resources(gpu=False) == StageResources(cpus=1.0, gpus=0.0)


def test_the_model_stages_declare_a_gpu_each_when_the_cluster_has_them():
    import taast_ray  # noqa: F401  (before Ultralytics)
    from taast_ray.ray_env import stage_resources
    from taast_ray.stages.detect import DetectStage
    from taast_ray.stages.embed import EmbedStage

    for stage_cls in (DetectStage, EmbedStage):
        assert stage_cls.resources(gpu=True) == StageResources(cpus=1.0, gpus=1.0)
        assert stage_cls.resources(gpu=False) == StageResources(cpus=1.0, gpus=0.0)
        # "true"/"false" decide without asking the cluster; "auto" asks it (tests/pipeline)
        assert stage_resources(stage_cls, "true").gpus == 1.0 and stage_resources(stage_cls, "false").gpus == 0.0
    assert (DetectStage.name, EmbedStage.name) == ("detect", "embed")
