"""torch's own FLOP counters run on a real model, to hold the analytic accounting to them
(tests/test_accounting.py asserts the equalities, notebooks/01_accounting.ipynb shows them).

  FlopCounterMode  counts 2mnk per matmul, forward and backward. With the math attention kernel
                   it sees QK^T and AV as plain bmm's over the full T x T square (the 12 L d_kv T
                   of the convention); CPU's fused kernel has no FLOP formula registered, so there
                   it sees the matmuls only. Lookups count zero; MoVE's slot contraction is a
                   batched matmul, so both see it (forward and 2x backward).
  fvcore           counts one per multiply-add (so x2 here), forward only, and zero for the fused
                   attention and the embedding lookups (it reports them unsupported).
fvcore is a test and notebook dependency (the `test` extra); the functions import it when called.
"""

from __future__ import annotations

import warnings
from collections import Counter

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from movelab.accounting import analytic_costs
from movelab.config import ModelConfig
from movelab.model import GPT


def train_flops_counted(model: GPT, tokens: torch.Tensor) -> dict[str, int]:
    """FlopCounterMode's total FLOPs of one training step (forward and backward) on `tokens`
    (which are also the targets): {"fused": with the default attention kernel, "math": with the
    math kernel}."""
    with FlopCounterMode(display=False) as fused:
        model(tokens, tokens).backward()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as math:
        model(tokens, tokens).backward()
    return {"fused": fused.get_total_flops(), "math": math.get_total_flops()}


def forward_flops_fvcore(model: GPT, tokens: torch.Tensor) -> tuple[int, Counter]:
    """fvcore's count of one forward pass of the model in eval mode (multiply-adds, not x2), and
    the operators it had no handler for (name -> calls)."""
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model.eval(), (tokens,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return analysis.total(), analysis.unsupported_ops()


def counted_against_analytic(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> dict:
    """Per token, each counter's FLOPs of a fresh model of `cfg` beside what the analytic costs
    say it must count (the value-mix term added where the counter sees it)."""
    torch.manual_seed(seed)
    model = GPT(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len))
    n = tokens.numel()
    costs, train = analytic_costs(cfg), train_flops_counted(model, tokens)
    mix = costs.flops_per_token_value_mix_forward
    fvcore, _ = forward_flops_fvcore(model, tokens)
    return {"config": cfg.label,
            "analytic 6N + 3 mix": costs.flops_per_token_train_matmul + 3 * mix,
            "FlopCounterMode fused": train["fused"] / n,
            "analytic 6N + 12LdT + 3 mix": costs.flops_per_token_train + 3 * mix,
            "FlopCounterMode math": train["math"] / n,
            "analytic fwd 2N + mix": 2 * costs.params_active + mix,
            "fvcore x2": 2 * fvcore / n}


# the counter columns of counted_against_analytic and the analytic column each must equal
AGREEMENT = {"FlopCounterMode fused": "analytic 6N + 3 mix",
             "FlopCounterMode math": "analytic 6N + 12LdT + 3 mix",
             "fvcore x2": "analytic fwd 2N + mix"}
