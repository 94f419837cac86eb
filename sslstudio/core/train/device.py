"""Choose the training device once, with a notice when the wish cannot be met."""

from __future__ import annotations

import torch


def pick_device(wish: str = "auto") -> tuple[torch.device, list[str]]:
    """The device to use and user-facing notices (never raises: CPU is always there)."""
    notices: list[str] = []
    cuda_ok = False
    try:
        cuda_ok = torch.cuda.is_available() and torch.cuda.device_count() > 0
    except Exception as exc:  # a broken driver must not crash start-up
        notices.append(f"CUDA failed to initialise ({type(exc).__name__}): training on CPU")
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if wish in ("auto", "cuda") and cuda_ok:
        return torch.device("cuda"), notices
    if wish in ("auto", "mps") and mps_ok:
        return torch.device("mps"), notices
    if wish == "cuda":
        notices.append("no usable CUDA GPU found: training on CPU")
    if wish == "mps":
        notices.append("Apple GPU (MPS) not available: training on CPU")
    return torch.device("cpu"), notices


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'' if n == 1 else 's'})"
    return device.type
