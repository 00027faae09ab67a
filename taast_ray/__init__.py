"""taast-ray: Tail-Aware Active Self-Training selection for object detection, on Ray."""
from taast_ray import _offline  # noqa: F401  (sets Ultralytics' switches before anyone imports it)

__version__ = "0.1.0"


def __getattr__(name: str):
    """``taast_ray.select`` / ``taast_ray.run`` / ``taast_ray.Selection``: the Python API
    (:mod:`taast_ray.api`), imported on first use so ``import taast_ray`` stays light."""
    if name in ("select", "run", "Selection", "RunResult", "configure"):
        from taast_ray import api

        return getattr(api, name)
    raise AttributeError(f"module 'taast_ray' has no attribute {name!r}")
