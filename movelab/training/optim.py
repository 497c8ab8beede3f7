"""Optimizers by parameter group, and the learning-rate schedule."""

from __future__ import annotations

import math

import torch

from movelab.model import GPT
from movelab.training.config import TrainConfig

# Lookups (token embedding, LaVE tables, MoVE bank): their rows are touched only by the tokens in
# a batch, so they get their own learning rates and no weight decay, which would otherwise
# shrink every unseen row each step.


def build_optimizers(model: GPT, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    groups: dict[str, list] = {"embedding": [], "memory": [], "matrix": [], "other": [],
                               "router": []}
    for name, p in model.named_parameters():
        group = model.parameter_group(name)
        key = {"token_embedding": "embedding", "lave_tables": "memory", "move_bank": "memory",
               "transformer_matrices": "matrix"}.get(group, "other")
        if cfg.router_lr is not None and name.endswith(".value_mix.router.weight"):
            key = "router"  # its own group only when its rate is set: old checkpoints resume
        groups[key].append(p)
    lr = cfg.lr * cfg.lr_reference_width / model.cfg.width
    betas = (cfg.adam_beta1, cfg.adam_beta2)
    adamw_groups = [dict(params=groups["embedding"], lr=cfg.embedding_lr, weight_decay=0.0),
                    dict(params=groups["other"], lr=lr, weight_decay=0.0),
                    dict(params=groups["router"], lr=cfg.router_lr, weight_decay=0.0)]
    optimizers = []
    memory = dict(params=groups["memory"], lr=cfg.memory_lr_for(model.cfg), weight_decay=0.0)
    if cfg.memory_update == "lazy" and memory["params"]:
        # the memory's gradient becomes row-sparse (only the batch's token ids); SparseAdam
        # updates those rows' moments and values and leaves every other row as it is
        model.use_sparse_memory_gradients()
        optimizers.append(torch.optim.SparseAdam(memory["params"], lr=memory["lr"], betas=betas,
                                                 eps=cfg.adam_eps))
    else:
        adamw_groups.insert(1, memory)
    if cfg.optimizer == "muon":
        optimizers.append(torch.optim.Muon(groups["matrix"], lr=cfg.muon_lr,
                                           weight_decay=cfg.weight_decay,
                                           adjust_lr_fn="original"))
    else:
        adamw_groups.append(dict(params=groups["matrix"], lr=lr, weight_decay=cfg.weight_decay))
    # fused: one pass over each tensor instead of a dozen elementwise kernels; on this CPU it
    # steps a 16.7M-parameter MoVE bank in 20 ms instead of 160 ms (docs/research-log.md,
    # 2026-11-26). It agrees with the foreach kernel to rounding, not bit for bit.
    optimizers.insert(0, torch.optim.AdamW([g for g in adamw_groups if g["params"]],
                                           betas=betas, eps=cfg.adam_eps, fused=True))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["peak_lr"] = group["lr"]
    return optimizers


def clip_gradients(parameters, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ over dense and row-sparse gradients alike: the total 2-norm
    of every gradient, each scaled by max_norm / norm when that is below 1 (as torch does, with
    its 1e-6). Without sparse gradients it is torch's own function, so dense runs are unchanged;
    sparse gradients are coalesced in place first (duplicate rows summed), which SparseAdam
    would do anyway."""
    parameters = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in parameters):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    squares = []
    for p in parameters:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            squares.append(p.grad.values().pow(2).sum())
        else:
            squares.append(torch.linalg.vector_norm(p.grad).pow(2))
    total = torch.stack(squares).sum().sqrt()
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in parameters:
        p.grad.mul_(scale)
    return total


def lr_multiplier(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay from 1 to final_lr_frac at the last step."""
    warmup = round(cfg.warmup_frac * total)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.final_lr_frac + (1 - cfg.final_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizers: list[torch.optim.Optimizer], multiplier: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"] * multiplier
