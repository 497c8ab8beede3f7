"""The decoupling plans' secondary analyses (results/decouple-prose/PLAN.md): reported beside the
verdict, never part of it.

  matched comparisons  each memory model against a model matched to it in one cost: iso-FLOP
                       (standard at the same depth: FLOPs per token within MATCH_TOLERANCE) and
                       equal total parameters (a wider dense control), paired by seed, with the
                       cost ratios that say what is and is not matched
  BPB by frequency     memory model minus standard, per bucket of the input token's training
                       occurrences (`load.load_frequency_bpb`), paired by seed: whom does the
                       memory help?
  diagnostics along training
                       the slot diagnostics of every evaluation (curve.csv), seed means per
                       (depth, variant, fraction of training)

Only test-split rows enter a comparison (`scored_on_test`): a dev-split run (the dense
control's learning-rate choice) is a choice, not evidence. Tests follow
`analysis.paired_difference` (paired by seed where 2+ seeds are shared) and are Holm-corrected
over each returned table, one family per table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movelab.scaling.analysis import LEVEL, holm, paired_difference

MATCH_TOLERANCE = 0.03  # a cost "matched" within 3% (the plans' iso-FLOP rule)
COMPARED_ROLES = ("main", "seed", "control")
TEST_COLUMNS = ["test", "n", "difference", "low", "high", "p", "p_holm", "detectable"]


def scored_on_test(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose metric is a test-split score: text runs with eval_split=test in their
    recipe, and image runs (the image task always scores Fashion-MNIST's test images)."""
    recipe = df["recipe"].fillna("") if "recipe" in df else pd.Series("", index=df.index)
    on_test = recipe.str.split(";").map(lambda fields: "eval_split=test" in fields)
    return df[on_test | (df["task"] == "image")]


def _difference(values: pd.Series, base: pd.Series, level: float) -> dict:
    """`paired_difference`, and where the arms share one seed only, that seed's difference as
    the estimate (test "one seed", no interval): a lead to draw, never a test."""
    out = paired_difference(values, base, level=level)
    shared = values.index.intersection(base.index)
    if out["test"] == "" and len(shared) == 1:
        out |= {"test": "one seed", "n": "1",
                "difference": float(values[shared[0]] - base[shared[0]])}
    return out


def _by_seed(rows: pd.DataFrame, depth: int, label: str, metric: str) -> pd.Series:
    cell = rows[(rows["depth"] == depth) & (rows["path_label"] == label)]
    return cell.groupby("seed")[metric].first()


def _cost(rows: pd.DataFrame, depth: int, label: str, column: str) -> float:
    cell = rows[(rows["depth"] == depth) & (rows["path_label"] == label)]
    return float(cell[column].iloc[0]) if len(cell) else np.nan


def planned_comparisons(df: pd.DataFrame) -> list[tuple[int, str, str]]:
    """(depth, label, reference) for every memory model (LaVE, MoVE, any recipe arm) against
    standard at its depth, and every control against the memory model nearest to it in total
    parameters at its depth (the equal-total-parameter comparison)."""
    rows = scored_on_test(df)
    rows = rows[rows["role"].isin(COMPARED_ROLES)]
    pairs = []
    for depth, at in rows.groupby("depth"):
        memory = at[at["value_path"] != "standard"].drop_duplicates("path_label")
        if "standard" in set(at["path_label"]):
            pairs += [(int(depth), label, "standard") for label in memory["path_label"]]
        for control in at[(at["role"] == "control") & (at["value_path"] == "standard")
                          ].drop_duplicates("path_label").itertuples():
            if len(memory):
                nearest = memory.iloc[(memory["params_total"] - control.params_total).abs().argmin()]
                pairs.append((int(depth), nearest["path_label"], control.path_label))
    return pairs


def matched_comparisons(df: pd.DataFrame, comparisons=None, *, metric: str = "val_bpb",
                        level: float = LEVEL) -> pd.DataFrame:
    """For each (depth, label, reference) of `comparisons` (default `planned_comparisons`): the
    cost ratios label / reference (FLOPs per token, active and total parameters), what they
    match within MATCH_TOLERANCE ("FLOPs", "total params"), and the paired difference
    metric(label) - metric(reference) on the test split, Holm over the table."""
    rows = scored_on_test(df)
    rows = rows[rows["role"].isin(COMPARED_ROLES)]
    out = []
    for depth, label, reference in (planned_comparisons(df) if comparisons is None else comparisons):
        ratios = {name: _cost(rows, depth, label, column) / _cost(rows, depth, reference, column)
                  for name, column in (("flops_ratio", "flops_per_token_train"),
                                       ("active_ratio", "params_active"),
                                       ("total_ratio", "params_total"))}
        matched = [name for name, key in (("FLOPs", "flops_ratio"), ("total params", "total_ratio"))
                   if abs(ratios[key] - 1) <= MATCH_TOLERANCE]
        values, base = _by_seed(rows, depth, label, metric), _by_seed(rows, depth, reference, metric)
        out.append({"depth": depth, "path_label": label, "reference": reference,
                    "matched": ", ".join(matched), **ratios, "n_seeds": len(values),
                    "n_reference": len(base), **_difference(values, base, level)})
    columns = ["depth", "path_label", "reference", "matched", "flops_ratio", "active_ratio",
               "total_ratio", "n_seeds", "n_reference"] + TEST_COLUMNS
    table = pd.DataFrame(out, columns=columns)
    table["p_holm"] = holm(table["p"])
    return table


def frequency_differences(frequency: pd.DataFrame, labels, *, reference: str = "standard",
                          level: float = LEVEL) -> pd.DataFrame:
    """val BPB of each label minus the reference's, per depth and frequency bucket (the rows of
    `load.load_frequency_bpb`, test split), paired by seed; Holm over the table. Below 0: the
    label predicts the positions of that bucket better."""
    out = []
    for (depth, bucket), at in frequency.groupby(["depth", "bucket"]):
        base = at[at["path_label"] == reference].groupby("seed")["val_bpb"].first()
        if base.empty:
            continue
        span = at[["occurrences_min", "occurrences_max"]].iloc[0]
        for label in labels:
            values = at[at["path_label"] == label].groupby("seed")["val_bpb"].first()
            if values.empty:
                continue
            out.append({"depth": int(depth), "bucket": int(bucket), "path_label": label,
                        "occurrences_min": span["occurrences_min"],
                        "occurrences_max": span["occurrences_max"], "n_seeds": len(values),
                        "n_reference": len(base), **_difference(values, base, level)})
    columns = ["depth", "bucket", "path_label", "occurrences_min", "occurrences_max", "n_seeds",
               "n_reference"] + TEST_COLUMNS
    table = pd.DataFrame(out, columns=columns)
    table["p_holm"] = holm(table["p"])
    return table


def diagnostics_over_training(curves: pd.DataFrame,
                              columns=("slot_effective_count", "gate_std_across_slots",
                                       "g0_mean")) -> pd.DataFrame:
    """Seed means and spread of the slot diagnostics at each evaluation (the rows of
    `load.load_curves` for runs that recorded them): one row per (depth, path label, fraction of
    training), with n_seeds and, per column, its mean and seed std."""
    present = [c for c in columns if c in curves.columns]
    if not present:
        return pd.DataFrame(columns=["depth", "path_label", "fraction", "n_seeds"])
    rows = curves.dropna(subset=present, how="all").copy()
    rows["fraction"] = (rows["tokens"] / rows.groupby("run_id")["tokens"].transform("max")).round(3)
    aggregations = {"n_seeds": ("seed", "nunique")}
    for column in present:
        aggregations[column] = (column, "mean")
        aggregations[f"{column}_std"] = (column, "std")
    return rows.groupby(["depth", "path_label", "fraction"]).agg(**aggregations).reset_index()
