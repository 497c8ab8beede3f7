"""A compact GPT with three value paths: standard, LaVE and MoVE (docs/design.md).

Backbone: pre-norm RMSNorm, rotary position embeddings, QK-norm, ReLU^2 MLP of 4x width,
untied embedding and head, no biases, causal scaled-dot-product attention.

Value paths, per attention layer l, head h, position t, token x_t:
  standard  V = h W_V
  lave      V = [g0 *] V + g1 * T_l[x_t],              g = 2 sigmoid(h W_g,l)   (some layers)
  move      V = g0 * V + sum_i g_i * E[x_t, i],        g = 2 sigmoid(h W_G,l)   (every layer)
where h is the normed block input, T_l a per-layer table (V, d_kv) and E one bank (V, M, d_kv)
gathered once per forward and shared by all layers.

Generation: `forward(tokens, cache=KVCache())` runs the same code on new positions only, with
rotary angles offset by the positions cached and each layer's keys and mixed values appended.

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


def value_embedding_init_(weight: torch.Tensor, width: int, slots: int = 1):
    """Tables and bank: uniform in +-sqrt(3)/sqrt(d), i.e. std 1/sqrt(d) (docs/design.md); with `slots`
    M, std 1/sqrt(d M) (ModelConfig.bank_init "width_slots")."""
    bound = math.sqrt(3.0) / math.sqrt(width * slots)
    nn.init.uniform_(weight, -bound, bound)


def matrix_init_(linear: nn.Linear):
    """Transformer matrices that read the residual stream: uniform in +-sqrt(3 / fan_in)."""
    bound = math.sqrt(3.0 / linear.in_features)
    nn.init.uniform_(linear.weight, -bound, bound)


def gate_init_(linear: nn.Linear, std: float = 0.0):
    """Gates and routers: zero, so every gate starts at exactly 2 sigmoid(0) = 1; a router with
    `std` > 0 starts near, not at, 1, different per slot (symmetry breaking)."""
    if std > 0:
        nn.init.normal_(linear.weight, std=std)
    else:
        nn.init.zeros_(linear.weight)


class StandardGate(nn.Module):
    """The standard path's gate alone, V = g0 V with g0 = 2 sigmoid(h W_g,l) per head: MoVE's
    gating without its memory (a control)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.width, cfg.n_heads, bias=False)

    def init_weights(self, cfg: ModelConfig):
        gate_init_(self.gate)

    def forward(self, h, v, tokens, bank_values):
        return (2 * torch.sigmoid(self.gate(h))).unsqueeze(-1) * v


class LaveMix(nn.Module):
    """One layer's value embedding table and its per-head gate."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.gate_standard = cfg.n_heads, cfg.gate_standard
        self.table = nn.Embedding(cfg.vocab_size, cfg.d_kv)
        # with the ablation the gate has a second set of heads for the standard path
        self.gate = nn.Linear(cfg.width, cfg.n_heads * (2 if cfg.gate_standard else 1), bias=False)

    def init_weights(self, cfg: ModelConfig):
        value_embedding_init_(self.table.weight, cfg.width)
        gate_init_(self.gate)

    def forward(self, h, v, tokens, bank_values):
        B, T, H, D = v.shape
        g = (2 * torch.sigmoid(self.gate(h))).view(B, T, -1, H, 1)
        table_values = self.table(tokens).view(B, T, H, D)
        if self.gate_standard:
            return g[:, :, 0] * v + g[:, :, 1] * table_values
        return v + g[:, :, 0] * table_values


class MoveMix(nn.Module):
    """One layer's router over the shared bank: H x (M + 1) gates (g0 for the standard path)."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.gate_standard, self.layer = cfg.gate_standard, layer
        n_gates = cfg.slots + (1 if cfg.gate_standard else 0)
        self.router = nn.Linear(cfg.width, cfg.n_heads * n_gates, bias=False)

    def init_weights(self, cfg: ModelConfig):
        gate_init_(self.router, cfg.router_init_std)

    def forward(self, h, v, tokens, bank_values: "BankValues"):
        B, T, H, D = v.shape
        g = (2 * torch.sigmoid(self.router(h))).view(B, T, H, -1)
        if self.gate_standard:
            v = g[..., :1] * v
            g = g[..., 1:]
        return v + bank_values.mix(g, self.layer)


class BankValues:
    """The bank rows of a batch's tokens, gathered once per forward and read by every layer.

    values: (B, T, H, M, D), heads outside slots, so that a layer's mix sum_i g_i E_i is one
    batched (1 x M) @ (M x D) matmul per token and head, with no copy per layer. Its FLOPs
    (2 M d_kv a layer) are outside the 6N convention (docs/design.md) and are reported on their own.

    With `taps` (training), the bank's gradient is left out of each layer's backward: every
    layer's gradient into the bank is an outer product g_l dy_l^T of size M x D per token and
    head, and summing L of them one layer at a time writes and re-reads a (B, T, M, d_kv) tensor
    L times. Instead `SlotMix` hands (g_l, dy_l) back as the gradients of two zero-sized-in-memory
    "tap" tensors that `BankGradient` gave out in the forward, and `BankGradient` sums them in one
    matmul, G (M x L) @ dY (L x D), when backward reaches the bottom of the stack. Everything
    flows through autograd's own edges (no side channel), so torch.compile traces it in one
    graph. Without `taps` (the reference path, and inference) plain autograd does the same
    arithmetic.
    """

    def __init__(self, values: torch.Tensor, taps: list | None = None):
        self.values, self.taps = values, taps

    def mix(self, g: torch.Tensor, layer: int) -> torch.Tensor:
        """Layer `layer`'s gates g (B, T, H, M) -> sum_i g_i E_i, (B, T, H, D)."""
        if self.taps is None:
            return (g.unsqueeze(-2) @ self.values).squeeze(-2)
        return SlotMix.apply(g, self.values, *self.taps[layer])


def _tap(x: torch.Tensor, shape) -> torch.Tensor:
    """A tensor of `shape` that holds no memory of its own (zeros, broadcast)."""
    return x.new_zeros(()).expand(shape)


class SlotMix(torch.autograd.Function):
    """One layer's slot mix over bank values that autograd does not differentiate; its backward
    returns the gates' gradient, and (g, dy) as the "gradients" of the two taps, which carry
    them to BankGradient."""

    @staticmethod
    def forward(ctx, g, values, gate_tap, out_tap):
        ctx.save_for_backward(g, values)
        return (g.unsqueeze(-2) @ values).squeeze(-2)

    @staticmethod
    def backward(ctx, grad_out):
        g, values = ctx.saved_tensors
        grad_g = (values @ grad_out.unsqueeze(-1)).squeeze(-1)
        return grad_g, None, g, grad_out


class BankGradient(torch.autograd.Function):
    """Identity on the token embeddings x that carries the bank values' gradient and hands out
    two taps per layer. x feeds the first layer, so autograd reaches this node only after every
    layer's backward has run and handed back its (g, dy) through the taps; the bank's gradient
    is then their sum, one matmul."""

    @staticmethod
    def forward(ctx, x, values, layers: int):
        gate_shape, out_shape = values.shape[:-1], (*values.shape[:-2], values.shape[-1])
        taps = []
        for _ in range(layers):
            taps += [_tap(values, gate_shape), _tap(values, out_shape)]
        return (x.view_as(x), *taps)

    @staticmethod
    def backward(ctx, grad_x, *grad_taps):
        gates, grad_outs = grad_taps[0::2], grad_taps[1::2]
        used = [(g, dy) for g, dy in zip(gates, grad_outs) if g is not None and dy is not None]
        if not used:
            return grad_x, None, None
        gates = torch.stack([g for g, _ in used], dim=-1)          # (B, T, H, M, L)
        grad_outs = torch.stack([dy for _, dy in used], dim=-2)    # (B, T, H, L, D)
        return grad_x, gates @ grad_outs, None


HEAD_CHUNK_ROWS = 256  # a chunk's logits, 256 x V fp32, stay in cache at V = 4096


class ChunkedHeadLoss(torch.autograd.Function):
    """The output head and the mean cross-entropy (targets of -1 ignored) over row chunks of
    x: each chunk's logits are computed, turned into its loss and its gradient (softmax minus
    one-hot, over the count of counted targets) and dropped, so the full (N, V) logits never
    exist. The gradients of x and of the head's weight are made in the forward and scaled by
    the loss's gradient in the backward."""

    @staticmethod
    def forward(ctx, x, weight, targets, chunk_rows: int):
        counted = targets != -1
        count = counted.sum().clamp_min(1).to(x.dtype)
        loss = x.new_zeros(())
        grad_x, grad_weight = torch.empty_like(x), torch.zeros_like(weight)
        for start in range(0, x.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            logits = x[rows] @ weight.t()
            target = targets[rows].clamp_min(0).unsqueeze(1)
            weights = counted[rows].to(x.dtype).unsqueeze(1)
            # exp once, then the one-hot as a scatter of one element a row: logsumexp and a
            # second exp, or a scatter over the whole chunk, cost the chunk two more passes
            peak = logits.amax(dim=1, keepdim=True)
            exp = torch.exp(logits - peak)
            total = exp.sum(dim=1, keepdim=True)
            loss = loss + ((peak + total.log() - logits.gather(1, target)) * weights).sum()
            scale = weights / count
            grad_logits = (exp * (scale / total)).scatter_add_(1, target, -scale)
            grad_x[rows] = grad_logits @ weight
            grad_weight += grad_logits.t() @ x[rows]
        ctx.save_for_backward(grad_x, grad_weight)
        return loss / count

    @staticmethod
    def backward(ctx, grad_loss):
        grad_x, grad_weight = ctx.saved_tensors
        return grad_x * grad_loss, grad_weight * grad_loss, None, None


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
        self.layer, self.value_mix = layer, None
        if cfg.value_path == "move":
            self.value_mix = MoveMix(cfg, layer)
        elif layer in cfg.lave_layers:
            self.value_mix = LaveMix(cfg)
        elif cfg.value_path == "standard" and cfg.gate_standard:
            self.value_mix = StandardGate(cfg)

    def init_weights(self, cfg: ModelConfig):
        for matrix in (self.q, self.k, self.v):
            matrix_init_(matrix)
        nn.init.zeros_(self.o.weight)  # residual outputs start at zero (nanochat)
        nn.init.ones_(self.q_norm.weight)
        nn.init.ones_(self.k_norm.weight)
        if self.value_mix is not None:
            self.value_mix.init_weights(cfg)

    def forward(self, h, cos, sin, tokens, bank_values, cache=None):
        B, T, _ = h.shape
        shape = (B, T, self.n_heads, self.head_dim)
        q = apply_rotary(self.q_norm(self.q(h).view(shape)), cos, sin)
        k = apply_rotary(self.k_norm(self.k(h).view(shape)), cos, sin)
        v = self.v(h).view(shape)
        if self.value_mix is not None:
            v = self.value_mix(h, v, tokens, bank_values)
        mask = None  # causal over the T positions given
        if cache is not None:  # the mixed value is what enters the cache (docs/design.md)
            k, v, mask = cache.extend(self.layer, k, v)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU bf16 autocast would run attention in bf16, where torch's CPU flash attention is
            # slower than in fp32 (its backward ~1.4x; research log 2026-12-02, session 11)
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                   attn_mask=mask, is_causal=mask is None)
            y = y.to(torch.get_autocast_dtype("cpu"))
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.o(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.width, 4 * cfg.width, bias=False)
        self.proj = nn.Linear(4 * cfg.width, cfg.width, bias=False)

    def init_weights(self, cfg: ModelConfig):
        matrix_init_(self.fc)
        nn.init.zeros_(self.proj.weight)  # a residual output

    def forward(self, x):
        return self.proj(F.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.width)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = nn.RMSNorm(cfg.width)
        self.mlp = MLP(cfg)

    def init_weights(self, cfg: ModelConfig):
        nn.init.ones_(self.attn_norm.weight)
        self.attn.init_weights(cfg)
        nn.init.ones_(self.mlp_norm.weight)
        self.mlp.init_weights(cfg)

    def forward(self, x, cos, sin, tokens, bank_values, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, tokens, bank_values, cache)
        return x + self.mlp(self.mlp_norm(x))


class KVCache:
    """Keys and values of the positions already computed, per layer, for incremental decoding
    (`GPT.forward(tokens, cache=cache)`): the first call fills it with a prefix, each later call
    appends its positions, which attend to every cached position and causally to each other.
    Values are cached after the value mix; the value paths are position-local, so they run
    unchanged on the new positions only."""

    def __init__(self, max_len: int | None = None):
        """max_len: positions to allocate room for at the first call (default: the model's
        seq_len); each layer's keys and values live in one buffer, written in place."""
        self.max_len = max_len
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.lengths: dict[int, int] = {}

    @property
    def length(self) -> int:
        """Positions held (the same in every layer between forward calls)."""
        return next(iter(self.lengths.values()), 0)

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append a layer's new keys and values (B, T, H, D); return all of them and the
        attention mask of the new positions (None: plain causal, nothing cached before)."""
        past, new = self.lengths.get(layer, 0), k.shape[1]
        if layer not in self.keys:
            size = (k.shape[0], max(self.max_len or 0, new), *k.shape[2:])
            self.keys[layer], self.values[layer] = k.new_empty(size), v.new_empty(size)
        if past + new > self.keys[layer].shape[1]:
            raise ValueError(f"the cache holds {self.keys[layer].shape[1]} positions, not "
                             f"{past + new}; give KVCache(max_len) room for the whole sequence")
        self.keys[layer][:, past:past + new] = k
        self.values[layer][:, past:past + new] = v
        self.lengths[layer] = past + new
        k, v = self.keys[layer][:, :past + new], self.values[layer][:, :past + new]
        if past == 0:
            return k, v, None
        # new position i (absolute past + i) sees keys 0 .. past + i
        return k, v, torch.ones(new, past + new, dtype=torch.bool, device=k.device).tril(past)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.bank = None
        # False: the bank's gradient through plain autograd (the reference the tests compare with)
        self.fast_bank_gradient = True
        # True: the head and the training loss in row chunks (ChunkedHeadLoss; False: the
        # reference, logits then F.cross_entropy)
        self.chunked_head_loss = True
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
        """Every weight's initialisation, named per module (docs/design.md); the random draws
        happen in module order, so a seed gives the same model as it always has."""
        cfg = self.cfg
        nn.init.normal_(self.embed.weight, std=cfg.embed_init_std)
        nn.init.normal_(self.head.weight, std=cfg.head_init_std)
        if self.bank is not None:
            slots = cfg.slots if cfg.bank_init == "width_slots" else 1
            value_embedding_init_(self.bank.weight, cfg.width, slots)
        for block in self.blocks:
            block.init_weights(cfg)
        nn.init.ones_(self.final_norm.weight)

    def forward(self, tokens, targets=None, reduction: str = "mean", cache: KVCache | None = None):
        """tokens (B, T) -> logits (B, T, V), or the cross-entropy with `targets`
        (positions whose target is -1, e.g. a condition prefix, are ignored). With a `cache`,
        `tokens` continue the positions it holds (rotary angles start after them), and their keys
        and values are appended to it: the same computation as one forward over the whole
        sequence, position by position."""
        B, T = tokens.shape
        start = 0 if cache is None else cache.length
        if cache is not None and cache.max_len is None:
            cache.max_len = self.cfg.seq_len
        if start + T > self.cfg.seq_len:
            raise ValueError(f"sequence of {start + T} tokens is longer than seq_len "
                             f"{self.cfg.seq_len}")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        x = self.embed(tokens)
        bank_values = None
        if self.bank is not None:  # the one gather of the bank, shared by every layer
            values = self.bank(tokens).view(B, T, self.cfg.slots, self.cfg.n_heads, -1)
            values = values.transpose(2, 3).contiguous()  # (B, T, H, M, D)
            if torch.is_autocast_enabled(values.device.type):
                # autocast would cast these fp32 rows to bf16 in every layer's mix, and the fast
                # path's hand-written backward would meet bf16 gradients with fp32 values: cast once
                values = values.to(torch.get_autocast_dtype(values.device.type))
            if self.fast_bank_gradient and self.training and torch.is_grad_enabled():
                x, *taps = BankGradient.apply(x, values, self.cfg.depth)
                bank_values = BankValues(values.detach(), list(zip(taps[0::2], taps[1::2])))
            else:
                bank_values = BankValues(values)
        for block in self.blocks:
            x = block(x, cos, sin, tokens, bank_values, cache)
        x = self.final_norm(x)
        if (targets is not None and self.chunked_head_loss and reduction == "mean"
                and self.training and torch.is_grad_enabled()
                and not torch.is_autocast_enabled(x.device.type)):
            return ChunkedHeadLoss.apply(x.reshape(B * T, -1), self.head.weight,
                                         targets.reshape(-1), HEAD_CHUNK_ROWS)
        logits = self.head(x)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(B * T, -1), targets.reshape(-1),
                               ignore_index=-1, reduction=reduction)

    def use_sparse_memory_gradients(self) -> None:
        """Let the memory's lookups (MoVE bank, LaVE tables) produce row-sparse gradients: only
        the rows of the batch's token ids, no dense (V, ...) tensor (for a lazy optimizer)."""
        for module in self.modules():
            if isinstance(module, nn.Embedding) and module is not self.embed:
                module.sparse = True

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
