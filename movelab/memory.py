"""A training run's memory and disk, from its config alone (nothing allocated), so a GPU-size
run can be checked on a laptop: the per-process peak of `accounting.training_memory` (weights,
gradients, optimizer state, activations; its docstring says what it counts) for a RunConfig
under its precision and data parallelism, the size of its checkpoint, and the machine's memory.
"""

from __future__ import annotations

import os
from dataclasses import replace

from movelab.accounting import BYTES_FP32, MemoryEstimate, training_memory
from movelab.config import ModelConfig

ACTIVATION_BYTES = {"fp32": 4, "bf16": 2}


def memory_estimate(run, *, precision: str = "fp32", ranks: int = 1) -> MemoryEstimate:
    """Peak bytes of one process of the training run `run` (a RunConfig: its model, batch size
    and optimizer), its activations in `precision` (fp32 on the CPU, bf16 under CUDA autocast),
    the global batch split over `ranks` torchrun processes; with more than one,
    DistributedDataParallel's gradient buckets hold a second fp32 copy of every gradient."""
    estimate = training_memory(run.model, -(-run.train.batch_size // ranks),
                               optimizer=run.train.optimizer,
                               activation_bytes=ACTIVATION_BYTES[precision])
    return replace(estimate, gradients=estimate.gradients * (2 if ranks > 1 else 1))


def checkpoint_bytes(cfg: ModelConfig, *, optimizer: str = "adamw") -> int:
    """Size of a run's checkpoint.pt: fp32 weights and optimizer state (pickling adds little;
    gradients are not saved)."""
    estimate = training_memory(cfg, 1, optimizer=optimizer, activation_bytes=BYTES_FP32)
    return estimate.weights + estimate.optimizer


def machine_memory_bytes() -> int:
    """Physical memory of this machine (what a CPU run can count on at most)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
