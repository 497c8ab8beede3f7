"""The pre-registered verdict of a decoupling sweep: the four criteria of
results/decouple-prose/PLAN.md (and decouple-image/PLAN.md), computed from a sweep's rows exactly
as the plans define them, so the Findings quote functions, not hand arithmetic.

"Memory is decoupled from compute here" is claimed only if all four hold:
  1 slot slope    the pooled slot gain (`analysis.pooled_slot_gain` over `depths`, seed-paired,
                  depth-by-seed blocks) is positive with its interval excluding 0 (each of
                  `depths` with 2+ MoVE slot counts, so that every depth enters the slope);
  2 depth         gain(deepest) - gain(shallowest) >= 0, where gain(d) is the mean paired
                  difference metric(baseline) - metric(largest MoVE) over seeds at depth d
                  (2+ paired seeds at each depth, so that gain(d) is a seed mean);
  3 beyond noise  at every depth of `depths`, that mean paired difference exceeds 3 standard
                  errors of the per-seed differences;
  4 exchange rate the dense-equivalent active size of the largest MoVE at the deepest depth
                  (`analysis.exchange_rate`) has its interval's lower end above its own
                  active parameters (params_gain_low > 0).
A criterion that the rows cannot assess (too few seeds, no dense law) holds neither way: its
`holds` is None, and the claim is not made.

A second recipe arm (e.g. "symbreak", whose variants are labelled "move x4 symbreak") is judged
by the same criteria on `arm_rows(df, "symbreak")`, the sweep's rows with that arm standing in
for the paper's MoVE rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from movelab.scaling.analysis import LEVEL, exchange_rate, paired_difference, pooled_slot_gain
from movelab.variant import display_name

CRITERIA = ("slot slope", "depth", "beyond noise", "exchange rate")
SIGMAS = 3.0  # criterion 3: the gain must exceed this many standard errors
VERDICT_COLUMNS = ["criterion", "estimate", "low", "high", "threshold", "holds", "detail"]


PAPER = "paper"  # the recipe arm of the main MoVE rows


def plan_metric(df: pd.DataFrame) -> str:
    """The primary metric the decoupling plans name for a sweep's rows: bits per token of the
    test images for the image task, BPB otherwise."""
    return "bits_per_token" if (df["task"] == "image").all() else "val_bpb"


def arm_rows(df: pd.DataFrame, arm: str) -> pd.DataFrame:
    """The rows with the MoVE runs of recipe arm `arm` (labels "<variant> <arm>") in place of
    the paper's MoVE runs: each takes its variant's display name and the role of its seed
    (the lowest seed "main", the others "seed"), so the analysis reads them as the main MoVE
    rows; every other run keeps its row. `PAPER` is the rows as they are."""
    if arm == PAPER:
        return df
    suffix = f" {arm}"
    is_arm = df["path_label"].str.endswith(suffix)
    if not is_arm.any():
        raise ValueError(f"no run of arm {arm!r}: no path_label ends in {suffix!r}")
    arm = df[is_arm].copy()
    arm["path_label"] = [display_name(label[: -len(suffix)]) for label in arm["path_label"]]
    arm["role"] = np.where(arm["seed"] == arm["seed"].min(), "main", "seed")
    paper_move = (df["value_path"] == "move") & df["role"].isin(("main", "seed"))
    return pd.concat([df[~is_arm & ~paper_move], arm], ignore_index=True)


def _paired_gains(df: pd.DataFrame, depth: int, baseline: str, largest: str,
                  metric: str) -> np.ndarray:
    """metric(baseline) - metric(largest) per seed both ran at `depth` (main and seed rows)."""
    rows = df[(df["depth"] == depth) & df["role"].isin(("main", "seed"))]
    by_seed = rows.pivot_table(index="seed", columns="path_label", values=metric,
                               aggfunc="first")
    if baseline not in by_seed or largest not in by_seed:
        return np.array([])
    return (by_seed[baseline] - by_seed[largest]).dropna().to_numpy(float)


def _mean_and_se(gains: np.ndarray) -> tuple[float, float]:
    if len(gains) < 2:
        return (float(gains.mean()) if len(gains) else np.nan), np.nan
    return float(gains.mean()), float(gains.std(ddof=1) / np.sqrt(len(gains)))


def decoupling_verdict(df: pd.DataFrame, *, metric: str = "val_bpb", depths=(4, 6),
                       baseline: str = "standard +g0", largest: str = "MoVE x16",
                       bootstrap: int = 200, seed: int = 0,
                       level: float = LEVEL) -> pd.DataFrame:
    """One row per criterion (CRITERIA): the estimate with its interval, the threshold it is
    held against, whether it holds (True / False; None where the rows cannot tell) and the
    numbers behind it in words. Lower `metric` is better (BPB, bits per token)."""
    depths = sorted(depths)
    rows = []

    pooled = pooled_slot_gain(df, depths=depths, all_seeds=True, level=level, metric=metric)
    memory = df[(df["value_path"] == "move") & df["role"].isin(("main", "seed"))]
    # a depth adds to the slope only where it has 2+ slot counts to compare
    slot_counts = memory.groupby("depth")["slots"].nunique()
    missing = [d for d in depths if slot_counts.get(d, 0) < 2]
    assessable = np.isfinite(pooled["low"]) and not missing
    rows.append({"criterion": "slot slope", "estimate": pooled["gain_per_doubling"],
                 "low": pooled["low"], "high": pooled["high"], "threshold": 0.0,
                 "holds": bool(pooled["low"] > 0) if assessable else None,
                 "detail": f"{metric} removed per doubling of slots, d{pooled['depths']}, "
                           f"{pooled['n_runs']} runs, {pooled['n_seeds']} seeds, "
                           f"{pooled['dof']} dof; detectable {pooled['detectable']:.4f}"
                           + (f"; not assessable: under 2 MoVE slot counts at "
                              f"{', '.join(f'd{d}' for d in missing)}" if missing else "")})

    gains = {d: _paired_gains(df, d, baseline, largest, metric) for d in depths}
    moments = {d: _mean_and_se(g) for d, g in gains.items()}
    (m_low, se_low), (m_high, se_high) = moments[depths[0]], moments[depths[-1]]
    difference, se = m_high - m_low, float(np.hypot(se_low, se_high))
    dof = min(len(gains[depths[0]]), len(gains[depths[-1]])) - 1
    half = stats.t.ppf(0.5 + level / 2, dof) * se if dof > 0 and np.isfinite(se) else np.nan
    # a point estimate, but of seed means: one seed at a depth is a lead, not the criterion
    assessable = np.isfinite(difference) and dof > 0
    rows.append({"criterion": "depth", "estimate": difference, "low": difference - half,
                 "high": difference + half, "threshold": 0.0,
                 "holds": bool(difference >= 0) if assessable else None,
                 "detail": f"gain of {largest} over {baseline}: "
                           f"d{depths[0]} {m_low:+.4f} (n {len(gains[depths[0]])}), "
                           f"d{depths[-1]} {m_high:+.4f} (n {len(gains[depths[-1]])})"
                           + ("" if assessable else "; not assessable: under 2 paired seeds")})

    margins = [(d, m - SIGMAS * s) for d, (m, s) in moments.items()]
    assessable = all(np.isfinite(margin) for _, margin in margins)
    worst = min((margin for _, margin in margins), default=np.nan) if assessable else np.nan
    rows.append({"criterion": "beyond noise", "estimate": worst, "low": np.nan, "high": np.nan,
                 "threshold": 0.0, "holds": bool(worst > 0) if assessable else None,
                 "detail": "; ".join(f"d{d}: {moments[d][0]:+.4f} vs {SIGMAS:g} x se "
                                     f"{SIGMAS * moments[d][1]:.4f} (n {len(gains[d])})"
                                     for d in depths)})

    exchange = exchange_rate(df, bootstrap=bootstrap, seed=seed, level=level, metric=metric)
    table = exchange.table
    cell = table[(table["depth"] == depths[-1]) & (table["path_label"] == largest)]
    if exchange.params_law is None or cell.empty or not np.isfinite(
            cell["params_gain_low"].iloc[0]):
        why = (f"no {largest} at d{depths[-1]}" if cell.empty
               else "; ".join(exchange.notes[:1]) or "no dense law")
        rows.append({"criterion": "exchange rate", "estimate": np.nan, "low": np.nan,
                     "high": np.nan, "threshold": 0.0, "holds": None,
                     "detail": f"not assessable: {why}"})
    else:
        row = cell.iloc[0]
        rows.append({"criterion": "exchange rate", "estimate": row["params_gain"],
                     "low": row["params_gain_low"], "high": row["params_gain_high"],
                     "threshold": 0.0, "holds": bool(row["params_gain_low"] > 0),
                     "detail": f"d{depths[-1]} {largest}: worth a dense model of "
                               f"{row['dense_params']:.3g} active params against its own "
                               f"{row['params_active']:.3g}"
                               + (" (extrapolated)" if row["extrapolated"] else "")})
    table = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    table["holds"] = table["holds"].astype(object)  # True, False or None, not numpy's bool
    return table


def claimed(verdict: pd.DataFrame) -> bool:
    """Whether the verdict allows the claim: every criterion holds (None does not)."""
    return bool(all(holds is True for holds in verdict["holds"]))


SLOT_GAIN_COLUMNS = ["depth", "arm", "slots", "path_label", "n", "gain", "low", "high", "p",
                     "per_seed"]


def slot_gain_table(df: pd.DataFrame, *, metric: str = "val_bpb", depths=(4, 6),
                    baseline: str = "standard +g0", arms=(PAPER,),
                    level: float = LEVEL) -> pd.DataFrame:
    """At each depth, for each recipe arm ("paper": the main MoVE rows; any other name: its
    `arm_rows`) and MoVE slot count: the paired gain metric(baseline) - metric(MoVE) over the
    seeds both ran (`analysis.paired_difference`: t interval, p; with one shared seed its gain
    alone), and the per-seed gains (a dict seed -> gain). Positive: the memory model is better."""
    rows = []
    for arm in arms:
        arm_df = arm_rows(df, arm)
        runs = arm_df[arm_df["role"].isin(("main", "seed"))]
        for depth in depths:
            at_depth = runs[runs["depth"] == depth]
            base = at_depth[at_depth["path_label"] == baseline].set_index("seed")[metric]
            move = at_depth[at_depth["value_path"] == "move"]
            for (slots, label), cell in move.groupby(["slots", "path_label"]):
                values = cell.set_index("seed")[metric]
                shared = base.index.intersection(values.index)
                test = paired_difference(base, values, level=level)
                per_seed = base[shared] - values[shared]
                rows.append({"depth": depth, "arm": arm, "slots": int(slots),
                             "path_label": label, "n": len(shared),
                             # one shared seed: its own gain, without an interval
                             "gain": per_seed.mean() if len(shared) == 1 else test["difference"],
                             "low": test["low"], "high": test["high"], "p": test["p"],
                             "per_seed": per_seed.to_dict()})
    return pd.DataFrame(rows, columns=SLOT_GAIN_COLUMNS)
