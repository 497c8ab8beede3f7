"""Vocabulary as an axis (results/vocab-prose/PLAN.md): does MoVE's gain over standard grow with
the occurrences per bank row? The bank is indexed by token id, so at a fixed token budget each
row is trained on about tokens_seen / V occurrences: a smaller vocabulary trains every row more.

  gain(V, k, s)   val_bpb(standard, V, s) - val_bpb(MoVE xk, V, s), paired by seed s (runs
                  sharing a seed share batches at a given V); positive when MoVE is better
  H1              per cell (V, k): the mean paired gain > 0 (paired t over the seeds),
                  Holm-corrected over the cells
  H2 (the question)
                  the slope b of gain on log2(tokens_seen / V), least squares over every
                  (V, k, s) gain with fixed effects for k and for seed, t interval on the
                  residual degrees of freedom: supported only if the interval lies above 0,
                  refuted only if it lies below, otherwise unresolved
  H3              at each V, the slot slope (gain per doubling of slots, seed-paired)

Every function takes the rows of a vocabulary sweep (`load.load_runs`: every group is the
design, whatever its role) and returns tables or dicts; a quantity the rows cannot give yet is
NaN with a note, never guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scipy import stats

from movelab.scaling.analysis import (ALPHA, LEVEL, blocked_slope, holm, paired_difference,
                                      smallest_detectable)

GAIN_COLUMNS = ["vocab_size", "path_label", "slots", "seed", "tokens_per_id",
                "log2_tokens_per_id", "gain"]


def vocabulary_gains(df: pd.DataFrame, metric: str = "val_bpb") -> pd.DataFrame:
    """gain(V, k, s) for every MoVE run that has a standard run at its vocabulary and seed,
    with the mean occurrences per bank row, tokens_seen / V, and its log2."""
    rows = []
    for (vocab, seed), at in df.groupby(["vocab_size", "seed"]):
        standard = at[at["value_path"] == "standard"]
        if len(standard) != 1:
            continue
        for run in at[at["value_path"] == "move"].itertuples():
            per_id = run.tokens_seen / vocab
            rows.append({"vocab_size": int(vocab), "path_label": run.path_label,
                         "slots": int(run.slots), "seed": int(seed), "tokens_per_id": per_id,
                         "log2_tokens_per_id": float(np.log2(per_id)),
                         "gain": float(standard[metric].iloc[0] - getattr(run, metric))})
    return pd.DataFrame(rows, columns=GAIN_COLUMNS).sort_values(
        ["vocab_size", "slots", "seed"], ignore_index=True)


def vocabulary_cells(df: pd.DataFrame, *, metric: str = "val_bpb",
                     level: float = LEVEL) -> pd.DataFrame:
    """H1: per (V, MoVE label), the mean paired gain over seeds with its t interval, p, Holm's p
    over every cell of the table, the smallest gain the test detects (80% power) and a verdict:
    "MoVE better" or "MoVE worse" beyond noise (Holm, 5%), else "unresolved"."""
    rows = []
    for (vocab, label), at in df[df["value_path"] == "move"].groupby(["vocab_size", "path_label"]):
        standard = df[(df["vocab_size"] == vocab) & (df["value_path"] == "standard")]
        test = paired_difference(standard.set_index("seed")[metric], at.set_index("seed")[metric],
                                 level=level)  # standard - MoVE: the gain
        rows.append({"vocab_size": int(vocab), "path_label": label, "slots": int(at["slots"].iloc[0]),
                     "n_seeds": len(at), **{("gain" if k == "difference" else k): v
                                            for k, v in test.items()}})
    columns = ["vocab_size", "path_label", "slots", "n_seeds", "test", "n", "gain", "low", "high",
               "p", "p_holm", "detectable", "verdict"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_holm"] = holm(table["p"])
    table["verdict"] = [
        "not tested" if np.isnan(p) else
        ("MoVE better" if gain > 0 else "MoVE worse") if p_holm < ALPHA else "unresolved"
        for p, p_holm, gain in zip(table["p"], table["p_holm"], table["gain"])]
    return table.sort_values(["vocab_size", "slots"], ignore_index=True)


def occurrence_slope(gains: pd.DataFrame, *, level: float = LEVEL) -> dict:
    """H2 on the rows of `vocabulary_gains`: gain = b log2(tokens per id) + a_k + c_seed, by
    least squares; b with its standard error, t interval and the smallest |b| the test detects
    (80% power, 5%), the residual degrees of freedom, and the verdict in words."""
    out = {"slope": np.nan, "se": np.nan, "low": np.nan, "high": np.nan, "dof": 0,
           "n": len(gains), "detectable": np.nan, "verdict": "not assessable: too few gains"}
    if gains.empty or gains["vocab_size"].nunique() < 2:
        return out
    sizes = pd.get_dummies(gains["path_label"], dtype=float)  # one intercept per MoVE size
    seeds = pd.get_dummies(gains["seed"], dtype=float).iloc[:, 1:]  # seed effects (first: 0)
    design = np.column_stack([gains["log2_tokens_per_id"], sizes, seeds])
    coef, *_ = np.linalg.lstsq(design, gains["gain"].to_numpy(float), rcond=None)
    dof = len(gains) - np.linalg.matrix_rank(design)
    out |= {"slope": float(coef[0]), "dof": int(dof)}
    if dof <= 0:
        return out | {"verdict": "not assessable: no residual degrees of freedom"}
    residual = gains["gain"].to_numpy(float) - design @ coef
    covariance = np.linalg.pinv(design.T @ design) * float(residual @ residual) / dof
    se = float(np.sqrt(covariance[0, 0]))
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    low, high = coef[0] - half, coef[0] + half
    verdict = ("supported: the gain grows with occurrences per row" if low > 0 else
               "refuted: the gain falls with occurrences per row" if high < 0 else
               "unresolved: the interval contains 0")
    return out | {"se": se, "low": float(low), "high": float(high),
                  "detectable": smallest_detectable(se, dof), "verdict": verdict}


def slot_slopes_by_vocabulary(df: pd.DataFrame, *, metric: str = "val_bpb",
                              level: float = LEVEL) -> pd.DataFrame:
    """H3: at each V, the gain per doubling of MoVE slots (minus the slope of `metric` on
    log2 M), seed-paired (a block per seed), with its t interval."""
    rows = []
    for vocab, move in df[df["value_path"] == "move"].groupby("vocab_size"):
        fit = blocked_slope(np.log2(move["slots"].to_numpy(float)), move[metric], move["seed"],
                            level=level)
        rows.append({"vocab_size": int(vocab), "n_runs": len(move),
                     "n_seeds": move["seed"].nunique(), "gain_per_doubling": -fit["slope"],
                     "low": -fit["high"], "high": -fit["low"], "dof": fit["dof"],
                     "detectable": smallest_detectable(fit["se"], fit["dof"])})
    return pd.DataFrame(rows, columns=["vocab_size", "n_runs", "n_seeds", "gain_per_doubling",
                                       "low", "high", "dof", "detectable"])
