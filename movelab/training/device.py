"""Where a process trains and at what precision: by default (`precision = "auto"`) the CPU in
fp32 and a CUDA GPU in bf16; `"bf16"` or `"fp32"` asks for one on either.

Under bf16 the forward runs under bf16 autocast (weights, optimizer state and the loss stay fp32);
on a CPU with AMX (Sapphire Rapids and later) that is where the matmuls are several times faster
than fp32 (research log 2026-12-02, session 11). On CUDA fp32 matmuls that remain may use TF32,
and batches go host -> device from pinned memory without blocking. Under torchrun with NCCL each rank has its own GPU (movelab.training.distributed).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform

import torch

from movelab.config import ConfigError
from movelab.training.config import computed_precision

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


# glibc hands freed memory back to the kernel: blocks above its mmap threshold (32 MiB at most)
# at once, and the top of its heap whenever more than the trim threshold is free there. A training
# step frees most of its activations (and the memory's dense gradient: 75 MiB for d6 MoVE x16)
# at the end of every backward, so the next step gets them as new pages: 5,000-22,000 page faults
# a step on the CPU presets, 12-20% of a step (research log, 2026-12-01, session 8). Serving every
# block from the heap and keeping it there (the process's peak stays resident, which a training
# process holds anyway) changes no arithmetic.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # glibc's malloc.h
_TRIM_THRESHOLD = 2**31 - 1  # the largest int: return the heap's top only beyond 2 GiB free
_TOP_PAD = 64 << 20          # grow the heap 64 MiB at a time
_host_allocator = "default"


def keep_freed_host_memory() -> str:
    """Tell glibc's malloc to keep freed memory for reuse instead of returning it to the kernel
    (no mmap'd blocks, trim threshold 2 GiB, 64 MiB heap growth), once per process; nothing where
    the C library is not glibc, or where the user set their own MALLOC_* (or glibc.malloc
    tunables) in the environment. Returns how the host allocator runs, for the run's record."""
    global _host_allocator
    if _host_allocator != "default":
        return _host_allocator
    if (any(name.startswith("MALLOC_") for name in os.environ)
            or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")):
        _host_allocator = "glibc: the environment's MALLOC_* settings"
    elif platform.libc_ver()[0] == "glibc":
        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        if all(mallopt(option, value) == 1 for option, value in (
                (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD))):
            _host_allocator = "glibc: freed memory kept"
    return _host_allocator


def host_allocator() -> str:
    """How this process's host allocator runs (keep_freed_host_memory)."""
    return _host_allocator


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


def precision(device: torch.device, requested: str = "auto") -> str:
    """What a run at `requested` precision (TrainConfig.precision) computes in on `device`."""
    return computed_precision(device.type, requested)


def autocast(device: torch.device, requested: str = "auto"):
    """bf16 autocast where `precision(device, requested)` is bf16, else nothing (fp32)."""
    if precision(device, requested) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on `device`: through pinned memory, asynchronously, when that is CUDA."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)
