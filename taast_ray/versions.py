"""Software versions recorded beside every run's output, and the CPU they ran on."""
import platform
import sys
from importlib import metadata

_PACKAGES = ("taast-ray", "ray", "torch", "torchvision", "ultralytics", "open_clip_torch",
             "faiss-cpu", "faiss-gpu-cu12", "numpy", "pyarrow", "pycocotools", "lvis")
# what decides a CPU run's floating point besides the software: the same code and wheels trained a
# different warm-up model on another development machine (study (a) part 7), so records say where
MACHINE_KEYS = ("platform", "cpu", "cpu_capability")


def software_versions() -> dict:
    versions = {"python": sys.version.split()[0], "platform": platform.platform(), **cpu()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu() -> dict:
    """The CPU's model name and, where torch is loaded, the vector ISA its CPU kernels dispatch to
    (torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, ...)."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    out = {"cpu": model or platform.processor() or platform.machine()}
    torch = sys.modules.get("torch")  # never imported for this alone: a selection may not need it
    if torch is not None:
        try:
            out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except (AttributeError, RuntimeError):
            pass
    return out
