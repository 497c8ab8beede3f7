"""How many bytes a training run holds at its peak, from the config alone (nothing allocated),
so a GPU-size run can be checked on a laptop before it is started.

    weights      every parameter, fp32 (also under bf16 autocast, which casts per op)
    gradients    one fp32 gradient per parameter (lookups included: dense gradients); under
                 torchrun twice that, for DistributedDataParallel's gradient buckets
    optimizer    AdamW's two moments (8 bytes) per parameter it steps; Muon's momentum (4 bytes)
                 per transformer matrix when it steps those
    activations  what autograd keeps for the backward at the run's batch (per rank under torchrun),
                 counted tensor by tensor from the model's forward (movelab/model.py), plus the
                 logits' transient copies (fp32 logits, log-softmax, and its gradient)

Activation counts, per token (d width, a = d_kv, H heads, M slots, V vocabulary):
  every layer  norm inputs and outputs 4d, q and k before and after rotary and in attention's
               own layout 6a, v, the attention output and its reshaped copy 3a, attention's
               log-sum-exp H, ReLU^2 8d
  MoVE         per layer the router's sigmoid and 2 sigmoid, 2 H (M + 1), and the unmixed v, a;
               once per forward the gathered bank rows M a, and in the backward the recorded
               per-layer value gradients L a with their stacks, 2 L a + H M L
  LaVE         per table the gate's sigmoid and 2 sigmoid, 2 H (2 with the g0 ablation), the
               table row a, and the unmixed v a with the g0 ablation
  head         final norm 2d; logits 3 V (fp32)
Under bf16 autocast (CUDA) matmul outputs are bf16 (2 bytes); the residual stream, norms' inputs
and the logits stay fp32. The total is an upper bound in spirit: gradients and activations are
added as if both peaked at once (tests/test_plan.py holds it between the measured peak of
`movelab bench` and 1.5x that, on the CPU).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from movelab.accounting import analytic_costs
from movelab.config import ModelConfig

BYTES_FP32 = 4
ADAM_STATE_BYTES = 8     # exp_avg and exp_avg_sq, fp32
MUON_STATE_BYTES = 4     # momentum buffer, fp32
PRECISION_BYTES = {"fp32": 4, "bf16": 2}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training process at its peak (one rank under torchrun)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def activation_elements_per_token(cfg: ModelConfig) -> tuple[int, int]:
    """(elements in the matmul precision, elements always fp32) that one token keeps for the
    backward; the module docstring lists them."""
    d, a, H, L, V = cfg.width, cfg.d_kv, cfg.n_heads, cfg.depth, cfg.vocab_size
    matmul = L * (6 * a + 3 * a + 8 * d)   # q, k (3 copies each), v, attention out + copy, MLP
    fp32 = L * (4 * d + H + 2 * H + 2)     # norms' inputs and outputs, lse, norm statistics
    if cfg.value_path == "move":
        gates = H * (cfg.slots + (1 if cfg.gate_standard else 0))
        matmul += L * (2 * gates + a) + cfg.slots * a + 2 * L * a + H * cfg.slots * L
    elif cfg.value_path == "lave":
        gates = H * (2 if cfg.gate_standard else 1)
        matmul += len(cfg.lave_layers) * (2 * gates + a + (a if cfg.gate_standard else 0))
    fp32 += 2 * d + 3 * V
    return matmul, fp32


def model_memory_estimate(cfg: ModelConfig, batch_size: int, *, optimizer: str = "adamw",
                          precision: str = "fp32", ranks: int = 1) -> MemoryEstimate:
    """Peak bytes of one process training `cfg` on batches of `batch_size` sequences (the
    global batch, split over `ranks` data-parallel processes), with `optimizer` (adamw or muon)
    and activations in `precision` (fp32 on the CPU, bf16 under CUDA autocast)."""
    costs = analytic_costs(cfg)
    params = costs.params_total
    muon = costs.params["transformer_matrices"] if optimizer == "muon" else 0
    matmul, fp32 = activation_elements_per_token(cfg)
    tokens = -(-batch_size // ranks) * cfg.seq_len
    return MemoryEstimate(
        weights=BYTES_FP32 * params,
        gradients=BYTES_FP32 * params * (2 if ranks > 1 else 1),
        optimizer=ADAM_STATE_BYTES * (params - muon) + MUON_STATE_BYTES * muon,
        activations=tokens * (PRECISION_BYTES[precision] * matmul + BYTES_FP32 * fp32))


def memory_estimate(run, *, precision: str = "fp32", ranks: int = 1) -> MemoryEstimate:
    """Peak bytes of one process of the training run `run` (a RunConfig: its model, batch size
    and optimizer), its activations in `precision`, the batch split over `ranks` processes."""
    return model_memory_estimate(run.model, run.train.batch_size, optimizer=run.train.optimizer,
                           precision=precision, ranks=ranks)


def checkpoint_bytes(cfg: ModelConfig, *, optimizer: str = "adamw") -> int:
    """Size of a run's checkpoint.pt: fp32 weights and optimizer state (pickling adds little;
    gradients are not saved)."""
    estimate = model_memory_estimate(cfg, 1, optimizer=optimizer)
    return estimate.weights + estimate.optimizer


def machine_memory_bytes() -> int:
    """Physical memory of this machine (what a CPU run can count on at most)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
