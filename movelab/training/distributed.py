"""Data parallelism under torchrun: `torchrun --nproc_per_node N -m movelab train ...`.

Every rank draws the same global batch from the same seeded generator and trains on its own
equal slice of rows; DistributedDataParallel averages the gradients, so the step equals the
single-process step on the whole batch (up to float summation order). Validation windows are
shared out too and the summed nats added over the ranks; rank 0 alone writes files. Ranks use
NCCL, one GPU each, when CUDA is available, else gloo on the CPU. Launched without torchrun
nothing here does anything: one process on the device movelab.training.device chose.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from movelab.config import ConfigError
from movelab.training import device as chosen_device


@contextmanager
def process_group():
    """Join torchrun's process group for the duration of the block (outside torchrun, or when
    a group already exists, do nothing)."""
    if "RANK" not in os.environ or dist.is_initialized():
        yield
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def launched_world_size() -> int:
    """The processes torchrun launched (its WORLD_SIZE), known before the group is joined."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that reports and writes files."""
    return rank() == 0


def device() -> torch.device:
    """This rank's GPU under NCCL, else the process's chosen device (movelab.training.device)."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return chosen_device.chosen()


def check_batch_size(batch_size: int) -> None:
    if batch_size % world_size():
        raise ConfigError(f"--batch-size {batch_size} is the global batch and must split evenly "
                          f"over the {world_size()} processes (torchrun --nproc_per_node); use a "
                          f"multiple of {world_size()}")


def local_rows(batch: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a global batch, on its device."""
    return chosen_device.to_device(batch.chunk(world_size())[rank()], device())


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model under DistributedDataParallel when there are ranks, else the model itself."""
    if not dist.is_initialized():
        return model
    here = device()
    return DistributedDataParallel(model, device_ids=[here] if here.type == "cuda" else None)


def average(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over the ranks."""
    if not dist.is_initialized():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world_size()


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (in float64)."""
    if not dist.is_initialized():
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device())
    dist.all_reduce(total)
    return tuple(total.tolist())


@contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. tokenising into the cache), the others after it."""
    if not is_main():
        dist.barrier()
    try:
        yield
    finally:  # also when rank 0 fails: the others then meet the same error themselves
        if is_main() and dist.is_initialized():
            dist.barrier()
