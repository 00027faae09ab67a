"""Host <-> device copies for the model wrappers and the decoder: pinned memory, non_blocking.

On CUDA a copy from pageable memory is staged by the driver and blocks the host; from pinned
memory it is one DMA that the host does not wait for. Results come back in one copy per tensor
and one wait for the stream, not one per image. On the CPU both are no-ops.
"""
from __future__ import annotations

import numpy as np
import torch


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``, through pinned memory without blocking when that is CUDA."""
    if device.type != "cuda" or tensor.device.type == "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_host(*tensors: torch.Tensor) -> list[np.ndarray]:
    """Numpy copies of device tensors: non_blocking copies into pinned buffers, then one wait."""
    if not tensors or tensors[0].device.type != "cuda":
        return [t.detach().numpy() for t in tensors]
    pinned = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
    for buffer, t in zip(pinned, tensors):
        buffer.copy_(t, non_blocking=True)
    torch.cuda.current_stream(tensors[0].device).synchronize()
    return [buffer.numpy() for buffer in pinned]
