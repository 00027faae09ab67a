"""Software versions recorded beside every run's output."""
import platform
import sys
from importlib import metadata

_PACKAGES = ("taast-ray", "ray", "torch", "torchvision", "ultralytics", "open_clip_torch",
             "faiss-cpu", "faiss-gpu-cu12", "numpy", "pyarrow", "pycocotools", "lvis")


def software_versions() -> dict:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
