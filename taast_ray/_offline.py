"""Offline safety for Ultralytics, applied before it is first imported.

Ultralytics reads these variables at import time. ``setdefault`` keeps a user's own choice: a
user with a network who sets ``YOLO_OFFLINE=0`` still gets the normal weight resolution, where a
name such as ``yolov8s.pt`` is downloaded on first use.
"""
import os
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_VERBOSE", "false")

if "YOLO_CONFIG_DIR" not in os.environ:
    _config_dir = Path(tempfile.gettempdir()) / "taast-ray-yolo-config"
    _config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(_config_dir)
