"""Parameter and FLOP accounting from the config alone (no model is allocated), so the GPU
ladder and x32 banks can be costed on a laptop. `GPT.costs()` counts the same quantities from
the module tree; tests hold the two equal and check both against torch's FLOP counters.

Conventions (docs/design.md, "Accounting conventions"):
  active parameters   the matmul weights: transformer matrices, gates/routers, output head;
                      embedding, LaVE tables and MoVE bank are lookups and cost zero FLOPs.
  train FLOPs/token   6 x active + 12 x L x d_kv x T (attention over a context of T, the
                      PaLM/nanochat convention, counted as if not causal); forward is a third.
  value-mix FLOPs     MoVE's contraction of M gated slots into each value, 2 M d_kv per layer
                      forward, is NOT in the 6N convention; it is reported on its own. (Other
                      elementwise work, norms, rotary and LaVE's gating, is counted nowhere.)
  bytes gathered      value-embedding rows read per token: M x d_kv once per forward for MoVE,
                      d_kv per LaVE layer; the input embedding row is reported separately.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from movelab.config import LADDERS, ModelConfig, build_config
from movelab.variant import Variant

PARAM_GROUPS = ("token_embedding", "output_head", "transformer_matrices", "gates_routers",
                "lave_tables", "move_bank", "norms_scalars")
ACTIVE_GROUPS = ("transformer_matrices", "gates_routers", "output_head")
BYTES_FP32, BYTES_BF16 = 4, 2


@dataclass(frozen=True)
class Costs:
    params: dict[str, int]
    params_total: int
    params_active: int
    flops_per_token_train: int
    flops_per_token_forward: int
    flops_per_token_train_matmul: int
    flops_per_token_train_attention: int
    flops_per_token_value_mix_forward: int
    elements_gathered_per_token: int
    bytes_gathered_per_token: int
    bytes_gathered_per_token_bf16: int
    bytes_embedding_per_token: int

    @classmethod
    def build(cls, *, params, matmul_params, attention_flops_forward, value_mix_flops_forward,
              elements_gathered, embedding_elements_gathered) -> "Costs":
        params = {group: int(params.get(group, 0)) for group in PARAM_GROUPS}
        forward = 2 * matmul_params + attention_flops_forward
        return cls(
            params=params,
            params_total=sum(params.values()),
            params_active=matmul_params,
            flops_per_token_train=3 * forward,
            flops_per_token_forward=forward,
            flops_per_token_train_matmul=6 * matmul_params,
            flops_per_token_train_attention=3 * attention_flops_forward,
            flops_per_token_value_mix_forward=value_mix_flops_forward,
            elements_gathered_per_token=elements_gathered,
            bytes_gathered_per_token=BYTES_FP32 * elements_gathered,
            bytes_gathered_per_token_bf16=BYTES_BF16 * elements_gathered,
            bytes_embedding_per_token=BYTES_FP32 * embedding_elements_gathered,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def attention_flops_per_token_forward(cfg: ModelConfig) -> int:
    """QK^T and AV: 2 matmuls x 2 FLOPs x d_kv x T per token per layer (a third of 12 L d_kv T)."""
    return 4 * cfg.depth * cfg.d_kv * cfg.seq_len


def analytic_costs(cfg: ModelConfig) -> Costs:
    d, d_kv, L, V, H = cfg.width, cfg.d_kv, cfg.depth, cfg.vocab_size, cfg.n_heads
    n_lave = len(cfg.lave_layers)
    gate_standard = 1 if cfg.gate_standard else 0
    params = {
        "token_embedding": V * d,
        "output_head": d * V,
        "transformer_matrices": L * (3 * d * d_kv + d_kv * d + 2 * d * 4 * d),
        "norms_scalars": L * (2 * d + 2 * cfg.head_dim) + d,
    }
    if cfg.value_path == "lave":
        params["gates_routers"] = n_lave * d * H * (1 + gate_standard)
        params["lave_tables"] = n_lave * V * d_kv
        mix_flops = 0
        gathered = n_lave * d_kv
    elif cfg.value_path == "move":
        params["gates_routers"] = L * d * H * (cfg.slots + gate_standard)
        params["move_bank"] = V * cfg.slots * d_kv
        mix_flops = L * 2 * cfg.slots * d_kv
        gathered = cfg.slots * d_kv
    else:  # standard, with or without its g0 gate
        params["gates_routers"] = L * d * H * gate_standard
        mix_flops = gathered = 0
    return Costs.build(
        params=params,
        matmul_params=sum(params.get(group, 0) for group in ACTIVE_GROUPS),
        attention_flops_forward=attention_flops_per_token_forward(cfg),
        value_mix_flops_forward=mix_flops,
        elements_gathered=gathered,
        embedding_elements_gathered=d,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process holds at its peak, by kind (training_memory)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def training_memory(cfg: ModelConfig, batch_size: int, *, optimizer: str = "adamw",
                    activation_bytes: int = BYTES_FP32) -> MemoryEstimate:
    """An estimate, from the config alone, of the memory a training step of `batch_size`
    sequences needs: fp32 weights and gradients of every parameter; the optimizer's state
    (AdamW keeps two moments per parameter; with `muon` the transformer matrices keep one
    momentum instead); and the activations the backward pass keeps, `activation_bytes` per
    element (4 in fp32, 2 under bf16 autocast): about 20 d per token per layer for a block
    (norm inputs, q k v, attention output, the MLP's 4 d hidden twice), the memory path's
    gathered values and gates, and the logits with their fp32 log-softmax. Allocator
    workspace and framework overhead are left out: on the CPU it came to 63-70% of the measured
    peak (docs/research-log.md, 2026-12-01), so a step that needs more than this does not fit."""
    costs = analytic_costs(cfg)
    d, d_kv, L, V, H = cfg.width, cfg.d_kv, cfg.depth, cfg.vocab_size, cfg.n_heads
    matrices = costs.params["transformer_matrices"]
    moments = 2 * costs.params_total - (matrices if optimizer == "muon" else 0)
    per_token = L * 20 * d + 3 * d  # blocks; embedding output and final norm
    if cfg.value_path == "lave":
        per_token += len(cfg.lave_layers) * (d_kv + 2 * H)
    elif cfg.value_path == "move":
        per_token += cfg.slots * d_kv + L * (d_kv + H * (cfg.slots + 1))
    tokens = batch_size * cfg.seq_len
    logits = tokens * V * (activation_bytes + 2 * BYTES_FP32)
    return MemoryEstimate(weights=BYTES_FP32 * costs.params_total,
                          gradients=BYTES_FP32 * costs.params_total,
                          optimizer=BYTES_FP32 * moments,
                          activations=tokens * per_token * activation_bytes + logits)


# the value paths and densities the ladder tables list at every rung
LADDER_VARIANTS = tuple(map(Variant.parse, ("standard", "lave x1", "lave x2", "move x1", "move x2",
                                             "move x4", "move x8", "move x16", "move x32")))


def costs_record(cfg: ModelConfig) -> dict:
    """The JSON face of a config's accounting (what `movelab flops --json` prints)."""
    return {"label": cfg.label, "config": cfg.to_dict(), **analytic_costs(cfg).to_dict()}


def ladder_records(ladders: list[str]) -> list[dict]:
    """costs_record of every rung of the named ladders x LADDER_VARIANTS, with its preset
    (`movelab flops --ladder`, the accounting figure and notebook 01)."""
    records = []
    for ladder in ladders:
        for depth in LADDERS[ladder].depths:
            for variant in LADDER_VARIANTS:
                cfg = build_config(LADDERS[ladder].preset_name(depth), **variant.model_args)
                records.append(costs_record(cfg) | {"preset": LADDERS[ladder].preset_name(depth)})
    return records


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def format_costs(record: dict) -> str:
    lines = [f"{record['label']}   (width {record['config']['width']}, heads "
             f"{record['config']['n_heads']}, vocab {record['config']['vocab_size']}, "
             f"seq_len {record['config']['seq_len']})", "parameters by group:"]
    for group, n in record["params"].items():
        lines.append(f"  {group:<22}{n:>16,}")
    lines += [f"  {'total':<22}{record['params_total']:>16,}",
              f"  {'active (matmul)':<22}{record['params_active']:>16,}",
              "per token:",
              f"  {'train FLOPs':<36}{record['flops_per_token_train']:>16,}"
              "   (6 x active + 12 L d_kv T)",
              f"  {'  of which matmul':<36}{record['flops_per_token_train_matmul']:>16,}",
              f"  {'  of which attention':<36}{record['flops_per_token_train_attention']:>16,}",
              f"  {'forward FLOPs':<36}{record['flops_per_token_forward']:>16,}",
              f"  {'value-mix FLOPs (fwd, not in 6N)':<36}"
              f"{record['flops_per_token_value_mix_forward']:>16,}",
              f"  {'bytes gathered, tables+bank (fp32)':<36}{record['bytes_gathered_per_token']:>16,}",
              f"  {'bytes gathered, input embedding':<36}{record['bytes_embedding_per_token']:>16,}"]
    return "\n".join(lines)


def format_ladder(records: list[dict]) -> str:
    header = (f"{'preset':<10}{'value path':<14}{'M':>4}{'params':>9}{'memory':>9}{'active':>9}"
              f"{'train FLOP/tok':>15}{'vs std':>8}{'gathered B/tok':>15}")
    lines, standard = [header, "-" * len(header)], None
    for r in records:
        cfg = r["config"]
        if cfg["value_path"] == "standard":
            standard = r["flops_per_token_train"]
            if len(lines) > 2:
                lines.append("")
        memory = r["params"]["lave_tables"] + r["params"]["move_bank"]
        path = Variant.of_model(cfg).text
        lines.append(f"{r['preset']:<10}{path:<14}{cfg['slots'] or '':>4}"
                     f"{_si(r['params_total']):>9}{_si(memory):>9}{_si(r['params_active']):>9}"
                     f"{_si(r['flops_per_token_train']):>15}"
                     f"{r['flops_per_token_train'] / standard:>8.3f}"
                     f"{_si(r['bytes_gathered_per_token']):>15}")
    lines.append("\nmemory = LaVE tables + MoVE bank (lookups, zero FLOPs); "
                 "FLOPs: 6 x active + 12 L d_kv T; bytes at fp32")
    return "\n".join(lines)
