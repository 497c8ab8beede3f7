"""Vocabulary as an axis (results/vocab-prose/PLAN.md): does MoVE's gain over standard grow with
the occurrences per bank row? The bank is indexed by token id, so at a fixed token budget each
row is trained on about tokens_seen / V occurrences: a smaller vocabulary trains every row more.
At a fixed budget log2(tokens / V) is -log2 V plus a constant, and V also changes the bytes per
token, the tokenizer and the bank's size: the slope is the gain's trend across V, not a
mechanism by itself.

  gain(V, k, s)   val_bpb(standard, V, s) - val_bpb(MoVE xk, V, s), paired by seed s (runs
                  sharing a seed share batches at a given V); positive when MoVE is better
  H1              per cell (V, k): the mean paired gain > 0 (paired t over the seeds),
                  Holm-corrected over the cells (`holm_m` of them)
  H2 (the question, as amended before any row: PLAN.md)
                  the slope b of the (V, s) gain averaged over k on log2(tokens_seen / V), with
                  a fixed effect per seed, t interval on the residual degrees of freedom:
                  supported only if the interval lies above 0, refuted only if it lies below,
                  otherwise unresolved (with the smallest slope the test detects). The three
                  gains of a (V, s) share one standard run, so they are one observation, not
                  three. The fit first registered (all 18 gains, fixed effects for k and seed)
                  is reported beside it (`occurrence_slope(..., per_gain=True)`): its interval
                  counts the shared standard run's noise three times, too narrow
  H3              at each V, the slot slope (`analysis.pooled_slot_gain`: gain per doubling of
                  slots, seed-paired)

Every function takes the rows of a vocabulary sweep (`load.load_runs`: every group is the
design, whatever its role) and returns tables or dicts; a quantity the rows cannot give yet is
NaN with a note or a "not assessable" verdict, never guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from movelab.scaling.analysis import ALPHA, LEVEL, holm, pooled_slot_gain, smallest_detectable
from movelab.scaling.load import run_diagnostics, runs_csv_path
from movelab.scaling.secondary import difference_or_lead

GAIN_COLUMNS = ["vocab_size", "path_label", "slots", "seed", "tokens_per_id",
                "log2_tokens_per_id", "gain"]


def _one_run_per_cell(df: pd.DataFrame) -> None:
    """A vocabulary sweep has one run per (V, variant, seed); anything else is an error to fix,
    not something to average over."""
    repeated = df[df.duplicated(["vocab_size", "path_label", "seed"], keep=False)]
    if len(repeated):
        raise ValueError("more than one run per (vocab_size, variant, seed): "
                         + ", ".join(sorted(repeated["run_id"])))


def vocabulary_gains(df: pd.DataFrame, metric: str = "val_bpb") -> pd.DataFrame:
    """gain(V, k, s) for every MoVE run that has a standard run at its vocabulary and seed,
    with the mean occurrences per bank row, tokens_seen / V, and its log2."""
    _one_run_per_cell(df)
    rows = []
    for (vocab, seed), at in df.groupby(["vocab_size", "seed"]):
        standard = at[at["value_path"] == "standard"]
        if standard.empty:
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
    over the tested cells (`holm_m`), the smallest gain the test detects (80% power) and a
    verdict: "MoVE better" or "MoVE worse" beyond noise (Holm, 5%), else "unresolved"; a cell
    with one seed shared with standard shows that seed's gain as a lead (test "one seed")."""
    _one_run_per_cell(df)
    rows = []
    for (vocab, label), at in df[df["value_path"] == "move"].groupby(["vocab_size", "path_label"]):
        standard = df[(df["vocab_size"] == vocab) & (df["value_path"] == "standard")]
        test = difference_or_lead(standard.set_index("seed")[metric], at.set_index("seed")[metric],
                                  level)  # standard - MoVE: the gain
        rows.append({"vocab_size": int(vocab), "path_label": label, "slots": int(at["slots"].iloc[0]),
                     "n_seeds": len(at), **{("gain" if k == "difference" else k): v
                                            for k, v in test.items()}})
    columns = ["vocab_size", "path_label", "slots", "n_seeds", "test", "n", "gain", "low", "high",
               "p", "p_holm", "holm_m", "detectable", "verdict"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_holm"], table["holm_m"] = holm(table["p"]), int(table["p"].notna().sum())
    table["verdict"] = [
        ("a lead: one seed" if test == "one seed" else "not tested") if np.isnan(p) else
        ("MoVE better" if gain > 0 else "MoVE worse") if p_holm < ALPHA else "unresolved"
        for test, p, p_holm, gain in zip(table["test"], table["p"], table["p_holm"], table["gain"])]
    return table.sort_values(["vocab_size", "slots"], ignore_index=True)


def occurrence_slope(gains: pd.DataFrame, *, per_gain: bool = False, level: float = LEVEL) -> dict:
    """H2 on the rows of `vocabulary_gains`: gain = b log2(tokens per id) + a seed effect, by
    least squares, on the (V, seed) gains averaged over the MoVE sizes (PLAN.md's amended H2;
    a (V, seed) needs every size present, else it is left out); with per_gain, on every gain
    with fixed effects for k and for seed (the fit first registered). Returns b with its
    standard error, t interval and the smallest |b| the test detects (80% power, 5%), the
    residual degrees of freedom, n, and the verdict in words."""
    out = {"slope": np.nan, "se": np.nan, "low": np.nan, "high": np.nan, "dof": 0,
           "n": 0, "detectable": np.nan, "verdict": "not assessable: too few gains"}
    if gains["gain"].isna().any():
        return out | {"verdict": f"not assessable: {int(gains['gain'].isna().sum())} gains are "
                                 "NaN (rerun those runs)"}
    if not per_gain:
        sizes = gains["path_label"].nunique()
        complete = gains.groupby(["vocab_size", "seed"]).filter(
            lambda at: at["path_label"].nunique() == sizes)
        gains = complete.groupby(["vocab_size", "seed"], as_index=False).agg(
            log2_tokens_per_id=("log2_tokens_per_id", "first"), gain=("gain", "mean"),
            path_label=("path_label", lambda _: "mean over sizes"))
    out["n"] = len(gains)
    if gains.empty or gains["vocab_size"].nunique() < 2:
        return out
    effects = [pd.get_dummies(gains["path_label"], dtype=float),  # one intercept per size
               pd.get_dummies(gains["seed"], dtype=float).iloc[:, 1:]]  # seed effects (first: 0)
    design = np.column_stack([gains["log2_tokens_per_id"], *effects])
    rank = np.linalg.matrix_rank(design)
    if rank < design.shape[1]:
        return out | {"verdict": "not assessable: the occurrences are confounded with the sizes "
                                 "or seeds present (no vocabulary shared across them)"}
    coef, *_ = np.linalg.lstsq(design, gains["gain"].to_numpy(float), rcond=None)
    dof = len(gains) - rank
    out |= {"slope": float(coef[0]), "dof": int(dof)}
    if dof <= 0:
        return out | {"verdict": "not assessable: no residual degrees of freedom"}
    residual = gains["gain"].to_numpy(float) - design @ coef
    covariance = np.linalg.inv(design.T @ design) * float(residual @ residual) / dof
    se = float(np.sqrt(covariance[0, 0]))
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    low, high = coef[0] - half, coef[0] + half
    detectable = smallest_detectable(se, dof)
    verdict = ("supported: the gain grows with occurrences per row" if low > 0 else
               "refuted: the gain falls with occurrences per row" if high < 0 else
               f"unresolved: the interval contains 0 (detectable {detectable:.4f})")
    return out | {"se": se, "low": float(low), "high": float(high), "detectable": detectable,
                  "verdict": verdict}


def slot_slopes_by_vocabulary(df: pd.DataFrame, *, metric: str = "val_bpb",
                              level: float = LEVEL) -> pd.DataFrame:
    """H3: at each V, `analysis.pooled_slot_gain` of its MoVE runs (gain per doubling of slots,
    seed-paired), every run of the sweep counted as a main-grid row."""
    return pd.DataFrame([{"vocab_size": int(vocab),
                          **pooled_slot_gain(at.assign(role="main"), level=level, metric=metric)}
                         for vocab, at in df.groupby("vocab_size")])


def row_occurrences(df: pd.DataFrame, sweep: str, results_dir=None) -> pd.DataFrame:
    """Per run, the mean occurrences per bank row (tokens_seen / V) beside the median over the
    ids that occur (result.json's, or diagnostics.json's, `bank_row_occurrences`), and the share
    of ids below 10 occurrences; NaN where a run has no diagnostics."""
    rows = []
    for run in df.itertuples():
        found, _ = run_diagnostics(runs_csv_path(sweep, results_dir).parent / "runs" / run.run_id)
        occurrences = (found or {}).get("bank_row_occurrences", {})
        rows.append({"vocab_size": run.vocab_size, "path_label": run.path_label, "seed": run.seed,
                     "tokens_per_id": run.tokens_seen / run.vocab_size,
                     "median_occurrences": occurrences.get("median", np.nan),
                     "share_below_10": occurrences.get("share_below_10", np.nan)})
    return pd.DataFrame(rows)
