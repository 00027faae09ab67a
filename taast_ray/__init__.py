"""taast-ray: Tail-Aware Active Self-Training selection for object detection, on Ray."""
from taast_ray import _offline  # noqa: F401  (sets Ultralytics' switches before anyone imports it)

__version__ = "0.1.0"
