"""Where a process trains and at what precision: the CPU in fp32, or a CUDA GPU in bf16.

On CUDA the forward runs under bf16 autocast (weights, optimizer state and the loss stay fp32),
fp32 matmuls that remain may use TF32, and batches go host -> device from pinned memory without
blocking. Under torchrun with NCCL each rank has its own GPU (movelab.training.distributed).
"""

from __future__ import annotations

import contextlib
import os

import torch

from movelab.config import ConfigError

DEVICES = ("auto", "cpu", "cuda")
_chosen = torch.device("cpu")


def choose(requested: str = "auto") -> torch.device:
    """The device of this process from then on: `auto` is CUDA when torch sees a GPU, else the
    CPU. Choosing CUDA turns on TF32 for fp32 matmuls."""
    global _chosen
    if requested not in DEVICES:
        raise ConfigError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise ConfigError("--device cuda, but this torch sees no CUDA device (a CPU-only build, "
                          "or no GPU); use --device cpu")
    if requested == "cuda" or (requested == "auto" and cuda):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        _chosen = torch.device("cuda", torch.cuda.current_device())
    else:
        _chosen = torch.device("cpu")
    return _chosen


def chosen() -> torch.device:
    return _chosen


def free_memory(device: torch.device) -> int | None:
    """Bytes free for a new run on `device`: the GPU's free memory, or the memory the kernel
    says is available without swapping (None where neither can be read)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def precision(device: torch.device) -> str:
    return "bf16" if device.type == "cuda" else "fp32"


def autocast(device: torch.device):
    """bf16 autocast on CUDA; on the CPU, nothing (fp32 throughout)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on `device`: through pinned memory, asynchronously, when that is CUDA."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)
