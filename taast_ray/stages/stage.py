"""What every model stage is: a name, the resources one actor of it asks for, a ``setup`` that loads
its model once per actor, and ``process`` that maps one batch (``__call__`` sets the stage up first).

Building a stage only records its arguments, so it is cheap to build and to describe; the model
loads in :meth:`Stage.setup`. The Ray adapter (``pipeline/live.py``, ``through_model_pool``) hands
map_batches :func:`actor_class`, which runs ``setup`` in the actor's constructor: the model loads
when the actor starts, once, before its first batch. A plain loop (a unit test, a benchmark's
in-process baseline) just calls the stage: its first call sets it up. No Ray here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class StageResources:
    """What one actor of a stage asks Ray for; how many actors run is configuration (ray.*_actors_*)."""
    cpus: float = 1.0
    gpus: float = 0.0


class Stage:
    """Subclasses set ``name``, declare :meth:`resources`, load their model in :meth:`setup` and
    map a batch in :meth:`process`."""

    name: ClassVar[str] = "stage"  # the actor pool's name on the Ray dashboard: MapBatches(<name>)
    _is_set_up: bool = False

    @classmethod
    def resources(cls, gpu: bool) -> StageResources:
        """One actor's needs, with a GPU or without. Whether GPUs are used is the cluster's call
        (``ray_env.wants_gpu``, from the cluster's resources, not this process's torch.cuda);
        how much of each one actor needs is the stage's. A stage without a model: one CPU."""
        return StageResources()

    def setup(self) -> None:
        """Load the model: once per actor, inside it (so the device is the one Ray granted)."""

    def ensure_setup(self) -> "Stage":
        """:meth:`setup` unless done already; returns the stage (``stage = X(...).ensure_setup()``
        where a caller times the model load apart from the batches)."""
        if not self._is_set_up:
            self.setup()
            self._is_set_up = True
        return self

    def process(self, batch):
        raise NotImplementedError

    def __call__(self, batch):
        return self.ensure_setup().process(batch)


def actor_class(stage_cls: type[Stage]) -> type[Stage]:
    """``stage_cls`` whose constructor also runs :meth:`Stage.setup`, named after the stage.

    Ray Data builds a callable class once per actor and names the operator after the class
    (``MapBatches(detect)``, its actors ``MapWorker(MapBatches(detect))``), so the model loads as
    the actor starts, as it did when stages loaded it in ``__init__``, and the dashboard reads well.
    """
    def __init__(self, *args, **kwargs):
        stage_cls.__init__(self, *args, **kwargs)
        self.ensure_setup()

    return type(stage_cls.name, (stage_cls,), {"__init__": __init__, "__module__": stage_cls.__module__,
                                               "__doc__": stage_cls.__doc__})
