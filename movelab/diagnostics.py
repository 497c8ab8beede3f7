"""Diagnostics of the memory paths: do a model's slots move independently, do its gates select,
and whom does the memory help? Callable on any model (the loop records them for every LaVE and
MoVE run, in result.json and at every evaluation in curve.csv; `movelab inspect RUN_DIR` prints
them, recomputed from model.pt when asked).

  slot_effective_count  the participation ratio (sum of eigenvalues)^2 / (sum of squared
                        eigenvalues) of the M x M Gram matrix of a token's M slot updates (its
                        memory rows minus their initial values), averaged over the TOP_IDS most
                        frequent training token ids: 1 when the slots move as one, M when they
                        move independently with equal size. For LaVE the "slots" of a token are
                        its rows in the layers' tables. tr(G)^2 / ||G||_F^2 is the same number
                        without an eigendecomposition (G is symmetric).
  gates                 per layer: mean of the standard path's gate g0 and of the memory gates,
                        their std across slots (per token and head, then averaged) and across
                        tokens (per slot and head, then averaged), on DIAGNOSTIC_WINDOWS
                        validation windows
  val_bpb_by_frequency  validation bits per byte of the positions whose *input* token falls in
                        each of FREQUENCY_BUCKETS equal shares of those positions, ranked by the
                        token's training occurrences (bucket 1 the rarest), on the same windows
  bank_row_occurrences  expected occurrences of each token id in the run's training tokens
                        (the training split's counts x epochs; windows are drawn at random):
                        median over the ids that occur, share of them below 10, ids never seen

The initial memory rows are those of `GPT(cfg)` right after `torch.manual_seed(seed)`, which is
how the loop builds every model, so `initial_memory_rows(run)` regenerates them from the config.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from movelab.model import GPT, LaveMix, MoveMix, StandardGate
from movelab.schema import DIAGNOSTIC_CURVE_COLUMNS, FREQUENCY_BUCKETS

TOP_IDS = 256
DIAGNOSTIC_WINDOWS = 64
RARE_OCCURRENCES = 10
CURVE_COLUMNS = DIAGNOSTIC_CURVE_COLUMNS  # what a memory run's curve.csv rows carry (schema)


def memory_rows(model: GPT) -> torch.Tensor | None:
    """(V, M, d_kv): each token's M memory rows (MoVE bank slots, or LaVE tables); None for
    the standard model."""
    cfg = model.cfg
    if model.bank is not None:
        return model.bank.weight.view(cfg.vocab_size, cfg.slots, cfg.d_kv)
    tables = [b.attn.value_mix.table.weight for b in model.blocks
              if isinstance(b.attn.value_mix, LaveMix)]
    return torch.stack(tables, dim=1) if tables else None


def initial_memory_rows(run) -> torch.Tensor | None:
    """The memory rows `run` (a RunConfig) started from, rebuilt from its seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.train.seed)
        rows = memory_rows(GPT(run.model))
    return None if rows is None else rows.detach().clone()


def participation_ratio(updates: torch.Tensor) -> torch.Tensor:
    """updates (..., M, D) -> (...): tr(G)^2 / ||G||_F^2 of G = U U^T (NaN where U = 0)."""
    updates = updates.double()
    gram = updates @ updates.transpose(-1, -2)
    trace = gram.diagonal(dim1=-2, dim2=-1).sum(-1)
    return trace.square() / gram.square().sum((-2, -1))


def top_ids(counts: np.ndarray, top: int = TOP_IDS) -> np.ndarray:
    """The `top` most frequent ids that occur at all (ties: the lower id first)."""
    order = np.argsort(-counts, kind="stable")[:top]
    return order[counts[order] > 0]


def slot_effective_count(rows: torch.Tensor, initial: torch.Tensor, ids: np.ndarray) -> float | None:
    """Mean participation ratio of the slot updates of `ids` (those that moved at all)."""
    index = torch.as_tensor(ids, dtype=torch.long, device=rows.device)
    ratios = participation_ratio(rows.detach()[index] - initial.to(rows.device)[index])
    ratios = ratios[torch.isfinite(ratios)]
    return float(ratios.mean()) if len(ratios) else None


def training_counts(data) -> np.ndarray:
    """Occurrences of each token id in one pass over the training split."""
    return np.bincount(np.asarray(data.train_tokens), minlength=data.vocab_size)


def bank_row_occurrences(counts: np.ndarray) -> dict:
    """Median occurrences over the ids that occur, the share of those below RARE_OCCURRENCES,
    and the ids that never occur."""
    seen = counts[counts > 0]
    return {"median": float(np.median(seen)) if len(seen) else 0.0,
            "share_below_10": float(np.mean(seen < RARE_OCCURRENCES)) if len(seen) else 0.0,
            "ids_never_seen": int((counts == 0).sum())}


def val_bpb_by_frequency(nats: torch.Tensor, x: torch.Tensor, target_bytes: torch.Tensor,
                         counts: np.ndarray, buckets: int = FREQUENCY_BUCKETS) -> list[dict]:
    """Bits per byte of `buckets` equal shares of the positions, ranked by the training count of
    their input token x (rarest first). nats, x and target_bytes: one value per position."""
    occurrences = torch.as_tensor(counts, dtype=torch.float64)[x.reshape(-1).cpu()]
    nats, nbytes = nats.reshape(-1).double().cpu(), target_bytes.reshape(-1).cpu()
    order = torch.argsort(occurrences, stable=True)
    rows = []
    for i, share in enumerate(torch.tensor_split(order, buckets)):
        counted = share[nbytes[share] > 0]
        total_bytes = int(nbytes[counted].sum())
        rows.append({"bucket": i + 1, "positions": len(share),
                     "occurrences_min": float(occurrences[share].min()) if len(share) else None,
                     "occurrences_max": float(occurrences[share].max()) if len(share) else None,
                     "val_bpb": float(nats[counted].sum() / (math.log(2) * total_bytes))
                     if total_bytes else None})
    return rows


def gate_statistics(records: list[tuple[int, torch.Tensor | None, torch.Tensor | None]]) -> list[dict]:
    """Per layer (layer, g0 (N, H) or None, memory gates (N, H, S) or None) -> statistics."""
    out = []
    for layer, g0, gates in records:
        row: dict = {"layer": layer,
                     "g0_mean": float(g0.mean()) if g0 is not None else None}
        if gates is not None:
            row.update(gate_mean=float(gates.mean()),
                       std_across_slots=float(gates.std(dim=-1, correction=0).mean()),
                       std_across_tokens=float(gates.std(dim=0, correction=0).mean()))
        out.append(row)
    return out


class _GateRecorder:
    """Forward hooks on every layer's gate or router that keep its gates as (N, H, ...)."""

    def __init__(self, model: GPT):
        self.gates: dict[int, list] = {}
        self.handles = []
        self.heads = model.cfg.n_heads
        for block in model.blocks:
            mix = block.attn.value_mix
            if isinstance(mix, (MoveMix, LaveMix, StandardGate)):
                linear = mix.router if isinstance(mix, MoveMix) else mix.gate
                self.handles.append(linear.register_forward_hook(self._hook(block.attn.layer, mix)))

    def _hook(self, layer: int, mix):
        heads = self.heads

        def hook(module, inputs, output):
            g = (2 * torch.sigmoid(output.float())).reshape(-1, output.shape[-1]).cpu()
            if isinstance(mix, MoveMix):  # (N, H x (M [+1])), head-major as MoveMix reads it
                g = g.view(len(g), heads, -1)
                g0, gates = (g[..., 0], g[..., 1:]) if mix.gate_standard else (None, g)
            elif isinstance(mix, LaveMix):  # (N, [2 x] H): g0 first with the ablation
                g = g.view(len(g), -1, heads)
                g0 = g[:, 0] if mix.gate_standard else None
                gates = g[:, -1].unsqueeze(-1)
            else:  # StandardGate: (N, H)
                g0, gates = g, None
            self.gates.setdefault(layer, []).append((g0, gates))
        return hook

    def records(self):
        cat = lambda parts: None if parts[0] is None else torch.cat(parts)  # noqa: E731
        return [(layer, cat([g0 for g0, _ in parts]), cat([g for _, g in parts]))
                for layer, parts in sorted(self.gates.items())]

    def remove(self):
        for handle in self.handles:
            handle.remove()


def memory_diagnostics(model: GPT, initial: torch.Tensor | None, data, counts: np.ndarray,
                       x: torch.Tensor, y: torch.Tensor, batch: int = 16) -> dict:
    """Every diagnostic of the module doc for `model` on validation windows (x, y); counts: the
    expected training occurrences of each id (training_counts x epochs)."""
    recorder = _GateRecorder(model)
    was_training = model.training
    model.eval()
    nats = []
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):  # in fp32 on every device
                nats.append(model(x[i:i + batch], y[i:i + batch], reduction="none").float())
    finally:
        recorder.remove()
        model.train(was_training)
    nats = torch.cat(nats).view(y.shape)
    rows = memory_rows(model)
    result = {
        "slot_effective_count": (slot_effective_count(rows, initial, top_ids(counts))
                                 if rows is not None and initial is not None else None),
        "memory_slots": int(rows.shape[1]) if rows is not None else 0,
        "gates": gate_statistics(recorder.records()),
        "val_bpb_by_frequency": val_bpb_by_frequency(nats, x, data.target_bytes(y), counts),
        "bank_row_occurrences": bank_row_occurrences(counts),
        "diagnostic_windows": len(x),
    }
    return result


def curve_fields(diagnostics: dict) -> dict:
    """The CURVE_COLUMNS of one evaluation: gate statistics averaged over the layers."""
    def layer_mean(key):
        values = [row[key] for row in diagnostics["gates"] if row.get(key) is not None]
        return float(np.mean(values)) if values else None

    fields = {"slot_effective_count": diagnostics["slot_effective_count"],
              "g0_mean": layer_mean("g0_mean"), "gate_mean": layer_mean("gate_mean"),
              "gate_std_across_slots": layer_mean("std_across_slots"),
              "gate_std_across_tokens": layer_mean("std_across_tokens")}
    for row in diagnostics["val_bpb_by_frequency"]:
        fields[f"val_bpb_q{row['bucket']}"] = row["val_bpb"]
    return fields


def format_diagnostics(label: str, diagnostics: dict) -> str:
    """The diagnostics as the text `movelab inspect` prints."""
    def num(x, spec=".4f"):
        return "-" if x is None else format(x, spec)

    occ = diagnostics["bank_row_occurrences"]
    lines = [label,
             f"slot_effective_count  {num(diagnostics['slot_effective_count'], '.3f')} of "
             f"{diagnostics['memory_slots']} slots (participation ratio of each token's slot "
             f"updates, mean over the {TOP_IDS} most frequent ids; 1: in lockstep)",
             f"bank_row_occurrences  median {occ['median']:,.1f} expected training occurrences "
             f"per id that occurs; {100 * occ['share_below_10']:.1f}% of them below "
             f"{RARE_OCCURRENCES}; {occ['ids_never_seen']} ids never seen",
             f"gates per layer ({diagnostics['diagnostic_windows']} validation windows):",
             f"  {'layer':>5}{'g0 mean':>10}{'gate mean':>11}{'std/slots':>11}{'std/tokens':>12}"]
    for row in diagnostics["gates"]:
        lines.append(f"  {row['layer']:>5}{num(row['g0_mean']):>10}{num(row.get('gate_mean')):>11}"
                     f"{num(row.get('std_across_slots')):>11}"
                     f"{num(row.get('std_across_tokens')):>12}")
    lines += ["val_bpb_by_frequency (equal shares of positions by the input token's training "
              "occurrences, rarest first):",
              f"  {'bucket':>6}{'occurrences':>24}{'positions':>11}{'val_bpb':>9}"]
    for row in diagnostics["val_bpb_by_frequency"]:
        span = f"{num(row['occurrences_min'], ',.0f')} - {num(row['occurrences_max'], ',.0f')}"
        lines.append(f"  {row['bucket']:>6}{span:>24}{row['positions']:>11}"
                     f"{num(row['val_bpb']):>9}")
    return "\n".join(lines)


def slot_axis_table(runs) -> "pandas.DataFrame":
    """A sweep's runs.csv (a DataFrame) summarised along the slot axis: one row per corpus,
    value path (+g0), recipe and M with the seeds' mean and std of val_bpb, the mean
    slot_effective_count, and for MoVE the slot slope of its (corpus, recipe): the least-squares
    val_bpb per doubling of M, fitted per seed and then averaged (seeds paired), with the seeds'
    std. A negative slope means more slots help."""
    import pandas as pd

    df = runs.copy()
    df["recipe"] = df["recipe"].fillna("").replace("", "paper")
    df["path"] = df["value_path"] + np.where(df["gate_standard"].astype(bool)
                                             & (df["value_path"] == "standard"), " +g0", "")
    keys = ["corpus", "path", "recipe", "slots"]
    table = df.groupby(keys).agg(val_bpb=("val_bpb", "mean"), val_bpb_std=("val_bpb", "std"),
                                 seeds=("seed", "nunique"),
                                 slot_effective_count=("slot_effective_count", "mean"))
    slopes = []
    for (corpus, recipe), arm in df[df["value_path"] == "move"].groupby(["corpus", "recipe"]):
        per_seed = [np.polyfit(np.log2(rows["slots"]), rows["val_bpb"], 1)[0]
                    for _, rows in arm.groupby("seed") if rows["slots"].nunique() > 1]
        if per_seed:
            slopes.append({"corpus": corpus, "path": "move", "recipe": recipe,
                           "slot_slope": float(np.mean(per_seed)),
                           "slot_slope_std": float(np.std(per_seed, ddof=1))
                           if len(per_seed) > 1 else np.nan})
    table = table.reset_index()
    if slopes:
        table = table.merge(pd.DataFrame(slopes), on=["corpus", "path", "recipe"], how="left")
    return table
