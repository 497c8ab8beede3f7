"""A compact GPT with three value paths: standard, LaVE and MoVE (see ../shared/SPEC.md).

Backbone: pre-norm RMSNorm, rotary position embeddings, QK-norm, ReLU^2 MLP of 4x width,
untied embedding and head, no biases, causal scaled-dot-product attention.

Value paths, per attention layer l, head h, position t, token x_t:
  standard  V = h W_V
  lave      V = [g0 *] V + g1 * T_l[x_t],              g = 2 sigmoid(h W_g,l)   (some layers)
  move      V = g0 * V + sum_i g_i * E[x_t, i],        g = 2 sigmoid(h W_G,l)   (every layer)
where h is the normed block input, T_l a per-layer table (V, d_kv) and E one bank (V, M, d_kv)
gathered once per forward and shared by all layers.

The model counts its own parameters (by group) and FLOPs structurally: every nn.Linear is an
active matmul, every table a zero-FLOP lookup. `movelab.accounting` derives the same numbers
from the config alone; the tests hold the two (and torch's FLOP counters) equal.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from movelab.accounting import Costs, attention_flops_per_token_forward
from movelab.config import ModelConfig


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0):
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()  # each (T, head_dim / 2)


def apply_rotary(x, cos, sin):
    """x: (B, T, H, D); rotate the two halves of each head as complex pairs."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[: x.shape[1], None, :], sin[: x.shape[1], None, :]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def value_embedding_init_(weight: torch.Tensor, width: int):
    """Tables and bank: uniform in +-sqrt(3)/sqrt(d), i.e. std 1/sqrt(d) (SPEC)."""
    bound = math.sqrt(3.0) / math.sqrt(width)
    nn.init.uniform_(weight, -bound, bound)


class LaveMix(nn.Module):
    """One layer's value embedding table and its per-head gate."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.gate_standard = cfg.n_heads, cfg.gate_standard
        self.table = nn.Embedding(cfg.vocab_size, cfg.d_kv)
        # with the ablation the gate has a second set of heads for the standard path
        self.gate = nn.Linear(cfg.width, cfg.n_heads * (2 if cfg.gate_standard else 1), bias=False)

    def forward(self, h, v, tokens, bank_values):
        B, T, H, D = v.shape
        g = (2 * torch.sigmoid(self.gate(h))).view(B, T, -1, H, 1)
        table_values = self.table(tokens).view(B, T, H, D)
        if self.gate_standard:
            return g[:, :, 0] * v + g[:, :, 1] * table_values
        return v + g[:, :, 0] * table_values


class MoveMix(nn.Module):
    """One layer's router over the shared bank: H x (M + 1) gates (g0 for the standard path)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_standard = cfg.gate_standard
        n_gates = cfg.slots + (1 if cfg.gate_standard else 0)
        self.router = nn.Linear(cfg.width, cfg.n_heads * n_gates, bias=False)

    def forward(self, h, v, tokens, bank_values):
        B, T, H, D = v.shape
        g = (2 * torch.sigmoid(self.router(h))).view(B, T, H, -1)
        if self.gate_standard:
            v = g[..., :1] * v
            g = g[..., 1:]
        # bank_values: (B, T, M, H, D); contracting over the slots as a batched matmul is about
        # twice as fast on CPU as an elementwise product and sum. Its FLOPs (2 M d_kv a layer)
        # are outside SPEC's 6N convention and are reported on their own.
        return v + (g.unsqueeze(-2) @ bank_values.transpose(2, 3)).squeeze(-2)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.q = nn.Linear(cfg.width, cfg.d_kv, bias=False)
        self.k = nn.Linear(cfg.width, cfg.d_kv, bias=False)
        self.v = nn.Linear(cfg.width, cfg.d_kv, bias=False)
        self.o = nn.Linear(cfg.d_kv, cfg.width, bias=False)
        self.q_norm = nn.RMSNorm(cfg.head_dim)
        self.k_norm = nn.RMSNorm(cfg.head_dim)
        self.value_mix = None
        if cfg.value_path == "move":
            self.value_mix = MoveMix(cfg)
        elif layer in cfg.lave_layers:
            self.value_mix = LaveMix(cfg)

    def forward(self, h, cos, sin, tokens, bank_values):
        B, T, _ = h.shape
        shape = (B, T, self.n_heads, self.head_dim)
        q = apply_rotary(self.q_norm(self.q(h).view(shape)), cos, sin)
        k = apply_rotary(self.k_norm(self.k(h).view(shape)), cos, sin)
        v = self.v(h).view(shape)
        if self.value_mix is not None:
            v = self.value_mix(h, v, tokens, bank_values)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.width, 4 * cfg.width, bias=False)
        self.proj = nn.Linear(4 * cfg.width, cfg.width, bias=False)

    def forward(self, x):
        return self.proj(F.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.width)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = nn.RMSNorm(cfg.width)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, tokens, bank_values):
        x = x + self.attn(self.attn_norm(x), cos, sin, tokens, bank_values)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.bank = None
        if cfg.value_path == "move":
            # stored flat as (V, M * d_kv) so one embedding lookup gathers every slot of a token
            self.bank = nn.Embedding(cfg.vocab_size, cfg.slots * cfg.d_kv)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.depth))
        self.final_norm = nn.RMSNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.normal_(self.head.weight, std=0.001)
        for name, module in self.named_modules():
            if isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)
            elif isinstance(module, nn.Embedding) and module is not self.embed:
                value_embedding_init_(module.weight, self.cfg.width)
            elif isinstance(module, nn.Linear) and module is not self.head:
                if name.endswith((".o", ".proj", ".router", ".gate")):
                    # residual outputs start at zero (nanochat); gates start at exactly 2 sigmoid(0) = 1
                    nn.init.zeros_(module.weight)
                else:
                    bound = math.sqrt(3.0 / module.in_features)
                    nn.init.uniform_(module.weight, -bound, bound)

    def forward(self, tokens, targets=None, reduction: str = "mean"):
        """tokens (B, T) -> logits (B, T, V), or the cross-entropy with `targets`
        (positions whose target is -1, e.g. a condition prefix, are ignored)."""
        B, T = tokens.shape
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than seq_len {self.cfg.seq_len}")
        bank_values = None
        if self.bank is not None:  # the one gather of the bank, shared by every layer
            bank_values = self.bank(tokens).view(B, T, self.cfg.slots, self.cfg.n_heads, -1)
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin, tokens, bank_values)
        logits = self.head(self.final_norm(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(B * T, -1), targets.reshape(-1),
                               ignore_index=-1, reduction=reduction)

    # ---------------------------------------------------------------- accounting
    def parameter_group(self, name: str) -> str:
        """The accounting group of a parameter, by where it lives in the module tree."""
        if name == "embed.weight":
            return "token_embedding"
        if name == "head.weight":
            return "output_head"
        if name == "bank.weight":
            return "move_bank"
        if name.endswith(".value_mix.table.weight"):
            return "lave_tables"
        if name.endswith((".value_mix.router.weight", ".value_mix.gate.weight")):
            return "gates_routers"
        if "norm" in name.rsplit(".", 2)[-2]:
            return "norms_scalars"
        if name.endswith((".q.weight", ".k.weight", ".v.weight", ".o.weight",
                          ".fc.weight", ".proj.weight")):
            return "transformer_matrices"
        raise KeyError(f"parameter {name} has no accounting group")

    def costs(self) -> Costs:
        """Parameters by group and per-token costs, counted from the module tree."""
        params: dict[str, int] = {}
        for name, p in self.named_parameters():
            group = self.parameter_group(name)
            params[group] = params.get(group, 0) + p.numel()
        linears = [m for m in self.modules() if isinstance(m, nn.Linear)]
        tables = [m for m in self.modules() if isinstance(m, nn.Embedding) and m is not self.embed]
        cfg = self.cfg
        routed_layers = sum(isinstance(b.attn.value_mix, MoveMix) for b in self.blocks)
        slot_contraction = routed_layers * 2 * (cfg.slots or 0) * cfg.d_kv
        # lookups per forward: the bank once, a LaVE table once per layer that owns it
        gathered = sum(m.embedding_dim for m in tables)
        return Costs.build(
            params=params,
            matmul_params=sum(m.weight.numel() for m in linears),
            attention_flops_forward=attention_flops_per_token_forward(cfg),
            value_mix_flops_forward=slot_contraction,
            elements_gathered=gathered,
            embedding_elements_gathered=self.embed.embedding_dim,
        )
