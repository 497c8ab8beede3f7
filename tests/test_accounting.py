"""Parameter and FLOP accounting: analytic = structural = torch's counters."""

import pytest
import torch

from movelab.accounting import ACTIVE_GROUPS, PARAM_GROUPS, analytic_costs
from movelab.config import build_config
from movelab.counters import forward_flops_fvcore, train_flops_counted
from movelab.model import GPT

VARIANTS = [dict(value_path="standard"), dict(value_path="lave", density=1),
            dict(value_path="lave", density=2), dict(value_path="lave", density=1, gate_standard=True),
            dict(value_path="move", density=1), dict(value_path="move", density=4),
            dict(value_path="move", slots=3, gate_standard=False)]
SIZES = [dict(depth=1, width=32, heads=1), dict(depth=2, width=64, heads=2),
         dict(depth=3, width=48, heads=3), dict(depth=4, width=64, heads=4)]


def configs():
    for size in SIZES:
        for variant in VARIANTS:
            if variant.get("value_path") == "move" and "density" in variant \
                    and variant["density"] * size["depth"] % 2:
                continue  # M = k L / 2 must be whole
            yield build_config(vocab_size=53, seq_len=12, **size, **variant)


CONFIGS = list(configs())


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.label} w{c.width}")
def test_analytic_equals_structural_and_groups_sum_to_total(cfg):
    model = GPT(cfg)
    structural, analytic = model.costs(), analytic_costs(cfg)
    assert structural == analytic
    assert set(structural.params) == set(PARAM_GROUPS)
    assert structural.params_total == sum(p.numel() for p in model.parameters())
    assert structural.params_total == sum(structural.params.values())
    assert structural.params_active == sum(structural.params[g] for g in ACTIVE_GROUPS)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.label} w{c.width}")
def test_flop_counter_mode_matches_analytic_matmul_flops(cfg):
    """FlopCounterMode (movelab.counters says what it sees) with the fused kernel counts the
    train matmul FLOPs, with the math kernel also the 12 L d_kv T of attention; both see MoVE's
    slot contraction, the reported value-mix term (forward and 2x backward)."""
    model = GPT(cfg)
    batch, costs = 3, analytic_costs(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len))
    n = batch * cfg.seq_len
    counted = train_flops_counted(model, tokens)
    mix = 3 * costs.flops_per_token_value_mix_forward
    assert counted["fused"] == n * (costs.flops_per_token_train_matmul + mix)
    assert counted["math"] == n * (costs.flops_per_token_train + mix)
    assert costs.flops_per_token_train == 3 * costs.flops_per_token_forward
    assert costs.flops_per_token_train_attention == 12 * cfg.depth * cfg.d_kv * cfg.seq_len


@pytest.mark.parametrize("cfg", CONFIGS[:len(VARIANTS)], ids=lambda c: c.label)
def test_fvcore_counts_half_the_forward_matmul_flops(cfg):
    """fvcore counts one FLOP per multiply-add (so x2 to compare) and has no handler for fused
    attention or embedding lookups: they are reported unsupported and count zero."""
    model = GPT(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    total, unsupported = forward_flops_fvcore(model, tokens)
    costs = analytic_costs(cfg)
    forward_matmul = 2 * costs.params_active + costs.flops_per_token_value_mix_forward
    assert 2 * total == 2 * cfg.seq_len * forward_matmul
    assert 2 * total == 2 * cfg.seq_len * (costs.flops_per_token_forward
                                           - costs.flops_per_token_train_attention // 3
                                           + costs.flops_per_token_value_mix_forward)
    assert unsupported["aten::scaled_dot_product_attention"] == cfg.depth
    assert unsupported["aten::embedding"] == 1 + (cfg.value_path != "standard") * (
        len(cfg.lave_layers) if cfg.value_path == "lave" else 1)


def test_spec_numbers_for_a_ladder_rung_by_hand():
    """cpu-d8 (d 128, L 8, H 4, V 4096, T 256), MoVE x2 -> M = 8, written out from SPEC by hand."""
    cfg = build_config("cpu-d8", value_path="move", density=2)
    c = analytic_costs(cfg)
    matrices = 8 * 12 * 128 * 128
    routers = 8 * 128 * 4 * (8 + 1)
    head = 128 * 4096
    assert c.params["move_bank"] == 4096 * 8 * 128
    assert c.params_active == matrices + routers + head
    assert c.flops_per_token_train == 6 * (matrices + routers + head) + 12 * 8 * 128 * 256
    assert c.bytes_gathered_per_token == 8 * 128 * 4
    lave = analytic_costs(build_config("cpu-d8", value_path="lave", density=1))
    move1 = analytic_costs(build_config("cpu-d8", value_path="move", density=1))
    assert lave.params["lave_tables"] == move1.params["move_bank"]  # MoVE x1 = LaVE x1 memory


def test_memory_grows_with_slots_while_flops_barely_move():
    costs = [analytic_costs(build_config("cpu-d8", value_path="move", density=k)) for k in (1, 32)]
    assert costs[1].params["move_bank"] == 32 * costs[0].params["move_bank"]
    assert costs[1].flops_per_token_train < 1.3 * costs[0].flops_per_token_train
