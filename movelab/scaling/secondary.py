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

Only test-split rows enter a comparison (`scored_on_test`; for the frequency buckets
`frequency_bpb_on_test`): a dev-split run (the dense control's learning-rate choice) is a choice,
not evidence. Tests follow `analysis.paired_difference` (paired by seed where 2+ seeds are
shared; the same test as `analysis.compare_to_standard`) and are Holm-corrected within each
depth (PLAN.md's families), `holm_m` giving the family's size. Differences are label minus
reference: below 0 the label is better for BPB and bits (the verdict's gains have the other sign).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movelab.scaling.analysis import LEVEL, holm, paired_difference
from movelab.scaling.load import load_frequency_bpb, with_train_settings

MATCH_TOLERANCE = 0.03  # a cost "matched" within 3% (the plans' iso-FLOP rule)
COMPARED_ROLES = ("main", "seed", "control")
TEST_COLUMNS = ["test", "n", "difference", "low", "high", "p", "p_holm", "holm_m", "detectable"]


def scored_on_test(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose metric is a test-split score: text runs with eval_split=test in their
    recipe, and image runs (the image task always scores Fashion-MNIST's test images)."""
    recipe = df["recipe"].fillna("") if "recipe" in df else pd.Series("", index=df.index)
    on_test = recipe.str.split(";").map(lambda fields: "eval_split=test" in fields)
    return df[on_test | (df["task"] == "image")]


def compared_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a comparison may use: test-split scores of main, seed and control runs."""
    rows = scored_on_test(df)
    return rows[rows["role"].isin(COMPARED_ROLES)]


def dense_control_rate(df: pd.DataFrame, sweep: str, results_dir=None) -> dict:
    """PLAN.md's one choice made from a sweep's rows, the dense control's base learning rate, by
    its rule: among the dense control's dev-split runs (role control, the standard path,
    eval_split=dev), the rate of the lowest dev val_bpb; if that is the lowest or the highest of
    the three rates first tried, one more run beyond that edge (half the rate, or twice) decides
    before the choice. Returns the runs (rate, dev val_bpb), `chosen` (None until the rule can
    choose), `run_next` (the rate to run first, or None) and `reason`, a sentence."""
    dense = df[(df["role"] == "control") & (df["value_path"] == "standard")]
    # the split as `scored_on_test` reads it, from the recipe: eval_split is a recipe field, and
    # result.json's config.train leaves a recipe field out at its default (dev)
    dev = dense.drop(index=scored_on_test(dense).index)
    dev = with_train_settings(dev, sweep, results_dir).rename(columns={"train_lr": "lr"})
    runs = dev[["run_id", "path_label", "lr", "val_bpb"]].sort_values("lr", ignore_index=True)
    out = {"runs": runs, "chosen": None, "run_next": None}
    if len(runs) < 3:
        return out | {"reason": f"{len(runs)} of the 3 dev runs of the dense control have "
                                "finished; the rule chooses from all three"}
    best = float(runs.loc[runs["val_bpb"].idxmin(), "lr"])
    lowest, highest = float(runs["lr"].min()), float(runs["lr"].max())
    if len(runs) == 3 and best in (lowest, highest):
        beyond = best / 2 if best == lowest else best * 2
        return out | {"run_next": beyond,
                      "reason": f"the lowest dev val_bpb is at the edge rate {best:g}: run "
                                f"{beyond:g} on dev first (PLAN.md), then choose"}
    return out | {"chosen": best,
                  "reason": f"rate {best:g}: the lowest dev val_bpb of {len(runs)} rates "
                            f"({', '.join(f'{r:g}' for r in runs['lr'])})"}


def frequency_bpb_on_test(df: pd.DataFrame, sweep: str, results_dir=None) -> pd.DataFrame:
    """`load.load_frequency_bpb` of the test-split main, seed and control rows of `df`."""
    return load_frequency_bpb(compared_rows(df), sweep, results_dir)


def _holm_by_depth(table: pd.DataFrame) -> pd.DataFrame:
    """p_holm within each depth's tests (one family per depth), and each family's size."""
    table["p_holm"], table["holm_m"] = np.nan, 0
    for _, rows in table.groupby("depth"):
        table.loc[rows.index, "p_holm"] = holm(rows["p"])
        table.loc[rows.index, "holm_m"] = int(rows["p"].notna().sum())
    return table


def difference_or_lead(values: pd.Series, base: pd.Series, level: float = LEVEL) -> dict:
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
    standard at its depth, and every dense control against the MoVE model of the paper's recipe
    (main and seed rows) nearest to it in total parameters at its depth (the equal-total-
    parameter comparison; ties go to the fewer slots)."""
    rows = compared_rows(df)
    pairs = []
    for depth, at in rows.groupby("depth"):
        memory = at[at["value_path"] != "standard"].drop_duplicates("path_label")
        if "standard" in set(at["path_label"]):
            pairs += [(int(depth), label, "standard") for label in memory["path_label"]]
        paper_move = memory[(memory["value_path"] == "move") & memory["role"].isin(("main", "seed"))
                            & (memory["path_label"].str.split().str.len() == 2)  # "MoVE x4"
                            ].sort_values(["params_total", "slots"])
        for control in at[(at["role"] == "control") & (at["value_path"] == "standard")
                          ].drop_duplicates("path_label").itertuples():
            if len(paper_move):
                distance = (paper_move["params_total"] - control.params_total).abs()
                pairs.append((int(depth), paper_move.loc[distance.idxmin(), "path_label"],
                              control.path_label))
    return pairs


def matched_comparisons(df: pd.DataFrame, comparisons=None, *, metric: str = "val_bpb",
                        level: float = LEVEL) -> pd.DataFrame:
    """For each (depth, label, reference) of `comparisons` (default `planned_comparisons`): the
    cost ratios label / reference (FLOPs per token, active and total parameters), what they
    match within MATCH_TOLERANCE ("FLOPs", "total params"), and the paired difference
    metric(label) - metric(reference) on the test split, Holm within each depth."""
    rows = compared_rows(df)
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
                    "n_reference": len(base), **difference_or_lead(values, base, level)})
    columns = ["depth", "path_label", "reference", "matched", "flops_ratio", "active_ratio",
               "total_ratio", "n_seeds", "n_reference"] + TEST_COLUMNS
    return _holm_by_depth(pd.DataFrame(out, columns=columns))


def frequency_differences(frequency: pd.DataFrame, labels, *, reference: str = "standard",
                          level: float = LEVEL) -> pd.DataFrame:
    """val BPB of each label minus the reference's, per depth and frequency bucket (the rows of
    `frequency_bpb_on_test`), paired by seed; Holm within each depth. Below 0: the label
    predicts the positions of that bucket better."""
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
                        "n_reference": len(base), **difference_or_lead(values, base, level)})
    columns = ["depth", "bucket", "path_label", "occurrences_min", "occurrences_max", "n_seeds",
               "n_reference"] + TEST_COLUMNS
    return _holm_by_depth(pd.DataFrame(out, columns=columns))


def diagnostics_over_training(curves: pd.DataFrame,
                              columns=("slot_effective_count", "gate_std_across_slots",
                                       "g0_mean")) -> pd.DataFrame:
    """Seed means and spread of the slot diagnostics at each evaluation (the rows of
    `load.load_curves` for runs that recorded them): one row per (depth, path label, slots,
    fraction of training), with n_seeds and, per column, its mean and seed std."""
    present = [c for c in columns if c in curves.columns]
    if not present:
        return pd.DataFrame(columns=["depth", "path_label", "slots", "fraction", "n_seeds"])
    fraction = curves["tokens"] / curves.groupby("run_id")["tokens"].transform("max")
    rows = curves.assign(fraction=fraction.round(3)).dropna(subset=present, how="all")
    aggregations = {"n_seeds": ("seed", "nunique")}
    for column in present:
        aggregations[column] = (column, "mean")
        aggregations[f"{column}_std"] = (column, "std")
    return rows.groupby(["depth", "path_label", "slots", "fraction"]).agg(**aggregations).reset_index()
