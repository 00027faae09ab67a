"""What every record says about where it ran: software versions and the CPU."""
import re

import torch  # loaded first, as in every run that trains or detects: cpu_capability needs it

from taast_ray.bench.measure import hardware
from taast_ray.versions import MACHINE_KEYS, cpu, software_versions


def test_records_name_the_cpu_and_the_isa_torch_dispatches_to():
    v = software_versions()
    assert set(MACHINE_KEYS) <= set(v) and v["cpu"]
    assert v["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert re.fullmatch(r"[A-Z0-9_]+", v["cpu_capability"])  # DEFAULT, AVX2, AVX512, ...
    with open("/proc/cpuinfo") as f:
        names = {line.split(":", 1)[1].strip() for line in f if line.startswith("model name")}
    assert v["cpu"] in names
    assert hardware()["cpu"] == cpu()["cpu"] == v["cpu"]
