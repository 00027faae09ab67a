"""The device a stage's model goes on comes from what Ray granted, not from torch.cuda.

Ray leaves a node's GPUs visible to a worker that asked for none, so these tests make
``torch.cuda.is_available()`` say True (on this CPU machine) and check that a worker granted no
GPU still chooses the CPU, for the model stages and for the central k-means.
"""
import pytest
import torch

from taast_ray.models.letterbox import resolve_device
from taast_ray.selection.kmeans import resolve_backend
from taast_ray.stages.device import device_for, granted_device, granted_gpus


def test_device_from_the_grant():
    assert device_for("auto", []) == "cpu"
    assert device_for("auto", [0]) == "cuda"
    assert device_for("auto", None) == "auto"           # outside Ray: the model wrapper asks torch
    assert device_for("cpu", [0]) == "cpu" and device_for("cuda:1", []) == "cuda:1"  # explicit wins


def test_a_plain_process_keeps_its_own_view(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert granted_gpus() is None or granted_gpus() == []  # the driver is no Ray worker
    assert resolve_device(device_for("auto", None)).type == "cuda"


def _inside_a_worker_granted_no_gpu():
    import torch

    torch.cuda.is_available = lambda: True  # a GPU node: visible, but not reserved by this task
    from taast_ray.selection.kmeans import resolve_backend
    from taast_ray.stages.device import granted_device, granted_gpus

    gpus = granted_gpus()
    return (gpus, granted_device("auto"), resolve_backend("auto", gpu_allowed=bool(gpus)),
            resolve_backend("torch", gpu_allowed=bool(gpus)))


def test_a_ray_worker_granted_no_gpu_gets_cpu(ray_local):
    task = ray_local.remote(num_cpus=0, num_gpus=0)(_inside_a_worker_granted_no_gpu)
    gpus, device, kmeans_auto, kmeans_torch = ray_local.get(task.remote())
    assert gpus == [] and device == "cpu"
    assert kmeans_auto in ("faiss", "numpy") and kmeans_torch == "torch-cpu"


def test_gpu_backends_are_refused_without_a_grant():
    for name in ("faiss-gpu", "torch-cuda"):
        with pytest.raises(Exception, match="granted no GPU"):
            resolve_backend(name, gpu_allowed=False)
    assert granted_device("cpu") == "cpu"
