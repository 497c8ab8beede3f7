"""Derived quantities of a sweep, each with its uncertainty: compute laws per value path, BPB
per doubling of MoVE slots, seed noise and tests against the standard model, the dense
exchange rate of memory, held-out selection of the joint law, and checks of the fitters
themselves (Chinchilla reproduction, synthetic recovery).

Every function takes the DataFrame of `movelab.scaling.load.load_runs` (or any rows of it) and
returns tables or small dataclasses; nothing prints or plots. What cannot be computed from the
rows present is skipped with a note (a `note` column, or `notes` on a dataclass), never guessed.

Conventions: the metric is `val_bpb` unless a function is given another (`metric=`: a column of
the rows, e.g. bits_per_token or fid for images); compute is `train_flops` (6 x active params + 12 L d_kv T
per token, docs/design.md); active parameters are `params_active` (matmul weights); MoVE memory is the
slot count M. "Main" rows are the runs of role "main" (the `role` column, movelab.schema: the
main grid, one seed per cell) and, with all_seeds=True, "seed" (its repeats); "control" runs are
used only where named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from movelab.scaling.fit import (EPOCH_START_GRID, ChinchillaFit, PowerLawFit, fit_chinchilla,
                                 fit_power_law, percentile_interval)
from movelab.scaling.joint import FORMS, HeldoutError, compare_forms
from movelab.scaling.load import find_reference_dir
from movelab.variant import Variant, variant_order

LEVEL = 0.95
METRIC_NAMES = {"val_bpb": "BPB", "bits_per_token": "bits per token", "fid": "FID",
                "class_accuracy": "class accuracy"}
MIN_LAW_DEPTHS = 4  # a 3-parameter law needs more distinct points than parameters
# Synthetic laws at the CPU sweep's scale: BPB near 2.8 at 1e11 FLOPs (cpu-d2), 5 depths.
SYNTHETIC_LAWS = {"with a floor": (1.0, 24.0, 0.10), "pure power law": (0.0, 12.0, 0.06)}


def main_rows(df: pd.DataFrame, *, all_seeds: bool = False) -> pd.DataFrame:
    """The runs of role "main" (one seed per cell), and with all_seeds the repeats ("seed")."""
    return df[df["role"].isin(("main", "seed") if all_seeds else ("main",))]


def _t_quantile(level: float, dof: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2, dof))


def interval(fit, name: str, level: float = LEVEL) -> tuple[float, float]:
    """`fit.interval`, or NaNs for a fit made without bootstrap refits."""
    return fit.interval(name, level) if fit.bootstrap_fits else (np.nan, np.nan)


def prediction_band(fit: PowerLawFit, x, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of the bootstrap refits' predictions at x (NaN without
    refits)."""
    if not fit.bootstrap_fits:
        return np.full(np.shape(x), np.nan), np.full(np.shape(x), np.nan)
    predictions = np.array([refit.predict(x) for refit in fit.bootstrap_fits])
    return tuple(percentile_interval(predictions, level, axis=0))


# --- accounting -----------------------------------------------------------------------------

def accounting_table(records: list[dict]) -> pd.DataFrame:
    """`movelab.accounting.ladder_records` as a table: per preset and value path, parameters (total,
    memory = LaVE tables + MoVE bank, active = matmul weights), train FLOPs per token (6 x active
    + 12 L d_kv T), bytes gathered per token, and total params and FLOPs relative to the standard
    model of the same preset."""
    rows = []
    for record in records:
        config = record["config"]
        rows.append({"preset": record["preset"], "depth": config["depth"],
                     "path_label": Variant.of_model(config).display,
                     "slots": config["slots"] or 0,
                     "params_total": record["params_total"],
                     "params_memory": record["params"]["lave_tables"]
                     + record["params"]["move_bank"],
                     "params_active": record["params_active"],
                     "flops_per_token_train": record["flops_per_token_train"],
                     "bytes_gathered_per_token": record["bytes_gathered_per_token"]})
    table = pd.DataFrame(rows)
    standard = table[table["path_label"] == "standard"].set_index("preset")
    for column in ("params_total", "flops_per_token_train"):
        table[f"{column}_vs_standard"] = table[column] / table["preset"].map(standard[column])
    return table


# --- compute laws ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ComputeLaws:
    """L(C) = E + A C^-alpha per path label, fitted to a metric (val_bpb) against `compute`."""

    compute: str  # the column used as C
    fits: dict[str, PowerLawFit]  # path label -> fit, for the labels with enough points
    table: pd.DataFrame  # one row per label: points, parameters with intervals, flags, note
    flags: dict[str, tuple[str, ...]]  # path label -> law_flags of its fit


AT_BOUND = 1e-6  # a parameter this close to its bound 0 (relative, for E) sits on it
GRID_PAD = 1.15  # figures draw a law from x_min / GRID_PAD to x_max * GRID_PAD


def law_grid(x, n: int = 100) -> np.ndarray:
    """Where a law over the points x is drawn and checked: a log grid a little beyond them."""
    return np.geomspace(np.min(x) / GRID_PAD, np.max(x) * GRID_PAD, n)


def law_flags(fit: PowerLawFit, x, y, level: float = LEVEL) -> tuple[str, ...]:
    """What a power-law fit to the points (x, y) cannot identify, in words (empty: nothing):
    E or alpha at its bound 0 (the floor, or the decay, is not fitted but imposed), E's
    bootstrap interval reaching 0, and bootstrap predictions over `law_grid(x)` that leave the
    points' y range by more than its width (refits that run away). A fit with any flag but
    the interval one gets no band in a figure (`band_is_drawn`)."""
    y = np.asarray(y, dtype=float)
    flags = []
    if fit.E <= AT_BOUND * y.min():
        flags.append("E at its bound 0")
    if fit.alpha <= AT_BOUND:
        flags.append("alpha at its bound 0")
    if fit.bootstrap_fits:
        if fit.E > AT_BOUND * y.min() and interval(fit, "E", level)[0] <= AT_BOUND * y.min():
            flags.append("E's interval reaches 0")
        low, high = prediction_band(fit, law_grid(x), level)
        span = np.ptp(y)
        if np.any(high > y.max() + span) or np.any(low < y.min() - span):
            flags.append("bootstrap predictions run away")
    return tuple(flags)


def band_is_drawn(flags) -> bool:
    """A bootstrap band means something unless the fit sits at a bound or its refits run away."""
    return not any(flag != "E's interval reaches 0" for flag in flags)


def _law_row(fit: PowerLawFit | None, level: float) -> dict:
    row = {}
    for name in ("E", "A", "alpha"):
        low, high = interval(fit, name, level) if fit else (np.nan, np.nan)
        row |= {name: fit.params[name] if fit else np.nan, f"{name}_low": low,
                f"{name}_high": high}
    return row


def _fit_law(x, loss, n_depths: int, *, bootstrap: int, seed: int):
    """The power law, or None and why not."""
    if n_depths < MIN_LAW_DEPTHS:
        return None, f"{n_depths} depth(s); a fit needs {MIN_LAW_DEPTHS}"
    return fit_power_law(x, loss, bootstrap=bootstrap, seed=seed), ""


def fit_compute_laws(df: pd.DataFrame, *, compute: str = "train_flops", all_seeds: bool = False,
                     bootstrap: int = 200, seed: int = 0, level: float = LEVEL,
                     metric: str = "val_bpb") -> ComputeLaws:
    """`metric` = E + A C^-alpha for each value path of the main rows, C = `compute`, with
    bootstrap percentile intervals (`bootstrap` refits, seeded) and `law_flags` in `flags`
    (a three-parameter law on four or five points often leaves E at its bound: say so)."""
    rows, fits, all_flags = [], {}, {}
    main = main_rows(df, all_seeds=all_seeds)
    for label in variant_order(main["path_label"]):
        runs = main[main["path_label"] == label]
        n_depths = runs["depth"].nunique()
        fit, note = _fit_law(runs[compute], runs[metric], n_depths, bootstrap=bootstrap,
                             seed=seed)
        flags = law_flags(fit, runs[compute], runs[metric], level) if fit else ()
        if fit:
            fits[label], all_flags[label] = fit, flags
        rows.append({"path_label": label, "n_runs": len(runs), "n_depths": n_depths,
                     **_law_row(fit, level), "flags": "; ".join(flags), "note": note})
    columns = ["path_label", "n_runs", "n_depths", "E", "E_low", "E_high", "A", "A_low",
               "A_high", "alpha", "alpha_low", "alpha_high", "flags", "note"]
    return ComputeLaws(compute, fits, pd.DataFrame(rows, columns=columns), all_flags)


# --- memory: BPB per doubling of slots -----------------------------------------------------

def blocked_slope(x, y, blocks, *, level: float = LEVEL) -> dict:
    """Least-squares slope of y on x with a fixed effect (own intercept) per block: the slope
    within blocks, pooled. A block with one x value adds nothing to the slope. Returns the slope,
    its standard error and t interval on n - blocks - 1 degrees of freedom (NaN without spare
    degrees of freedom), and n, the number of points in blocks with 2+ distinct x."""
    frame = pd.DataFrame({"x": np.asarray(x, float), "y": np.asarray(y, float),
                          "block": list(blocks)})
    frame = frame[frame.groupby("block")["x"].transform("nunique") > 1]
    out = {"slope": np.nan, "se": np.nan, "low": np.nan, "high": np.nan, "dof": 0,
           "n": len(frame)}
    if frame.empty:
        return out
    centred = frame[["x", "y"]] - frame.groupby("block")[["x", "y"]].transform("mean")
    sxx = float((centred["x"] ** 2).sum())
    slope = float((centred["x"] * centred["y"]).sum() / sxx)
    dof = len(frame) - frame["block"].nunique() - 1
    out |= {"slope": slope, "dof": dof}
    if dof > 0:
        residual = centred["y"] - slope * centred["x"]
        se = float(np.sqrt((residual ** 2).sum() / dof / sxx))
        half = _t_quantile(level, dof) * se
        out |= {"se": se, "low": slope - half, "high": slope + half}
    return out


def _gain_row(runs: pd.DataFrame, metric: str, level: float) -> dict:
    """BPB removed per doubling of slots over MoVE `runs`, seed-paired: a block per (depth,
    seed), so every slot count is compared with others of the same seed (same batches)."""
    fit = blocked_slope(np.log2(runs["slots"].to_numpy(float)), runs[metric],
                        zip(runs["depth"], runs["seed"]), level=level)
    note = ""
    if fit["n"] == 0:
        note = "one slot count: no slope"
    elif np.isnan(fit["se"]):
        note = "two runs: no interval"
    return {"n_runs": len(runs), "n_seeds": runs["seed"].nunique(),
            "slots": ", ".join(str(s) for s in sorted(runs["slots"].unique())),
            "gain_per_doubling": -fit["slope"], "low": -fit["high"], "high": -fit["low"],
            "dof": fit["dof"], "detectable": smallest_detectable(fit["se"], fit["dof"]),
            "note": note}


GAIN_COLUMNS = ["depth", "n_runs", "n_seeds", "slots", "gain_per_doubling", "low", "high", "dof",
                "detectable", "note"]


def _move_rows(df: pd.DataFrame, all_seeds: bool) -> pd.DataFrame:
    return main_rows(df, all_seeds=all_seeds).query("value_path == 'move'")


def slot_doubling_gains(df: pd.DataFrame, *, all_seeds: bool = False, level: float = LEVEL,
                        metric: str = "val_bpb") -> pd.DataFrame:
    """At each depth, minus the slope of `metric` (val_bpb; bits_per_token or fid for images) on
    log2(slots) over the MoVE main rows: `gain_per_doubling`, removed per doubling of M
    (positive: more slots help). With all_seeds, seed-paired (a fixed effect per seed,
    `blocked_slope`); the t interval has n - seeds - 1 degrees of freedom (`dof`), and
    `detectable` is the smallest slope that test finds at 80% power and the 5% level."""
    rows = [{"depth": depth, **_gain_row(runs, metric, level)}
            for depth, runs in _move_rows(df, all_seeds).groupby("depth")]
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def pooled_slot_gain(df: pd.DataFrame, *, depths=None, all_seeds: bool = True,
                     level: float = LEVEL, metric: str = "val_bpb") -> dict:
    """One gain per doubling of slots over the MoVE main rows of `depths` (all depths if None):
    depth fixed effects, seed-paired (a block per depth and seed), so only slot counts at the
    same depth and seed are compared. `depths` says which were pooled ("2-8")."""
    runs = _move_rows(df, all_seeds)
    if depths is not None:
        runs = runs[runs["depth"].isin(depths)]
    chosen = sorted(runs["depth"].unique())
    label = f"{chosen[0]}-{chosen[-1]}" if len(chosen) > 1 else "".join(map(str, chosen))
    return {"depths": label, **_gain_row(runs, metric, level)}


def depths_within_epochs(df: pd.DataFrame, max_epochs: float = 3.0) -> list[int]:
    """The depths whose main runs see at most `max_epochs` epochs of their corpus (all depths if
    none does): the depths pooled for the slot slope, since a corpus repeated more often is
    memorised by the memory paths (cpu-text's d10, 5.0 epochs; research log)."""
    epochs = main_rows(df).groupby("depth")["epochs"].max()
    return [int(d) for d in epochs[epochs <= max_epochs].index] or [int(d) for d in epochs.index]


def slot_gains_over_training(df: pd.DataFrame, curves: pd.DataFrame, *, pooled_depths=None,
                             level: float = LEVEL, metric: str = "val_bpb") -> pd.DataFrame:
    """`gain_per_doubling` of `metric` (a curve column) at every evaluation along training, from the MoVE main
    rows' curves (`movelab.scaling.load.load_curves`, all seeds): per depth (the k-th evaluation
    of every run at a depth sees the same tokens), and pooled over `pooled_depths` (all if None)
    at the same evaluation index, which is the same fraction of each depth's training. Columns:
    `scope` ("d6", or "pooled d2-d8"), depth (NaN when pooled), evaluation (1, 2, ...), epoch
    (mean over the scope's runs), fraction (of the training tokens) and the gain columns."""
    move = _move_rows(df, True)[["run_id", "slots", "value_path"]]
    points = curves.drop(columns=["slots", "value_path"], errors="ignore").merge(move, on="run_id")
    points = points.assign(
        evaluation=points.groupby("run_id").cumcount() + 1,
        fraction=points["tokens"] / points.groupby("run_id")["tokens"].transform("max"))
    pooled = points if pooled_depths is None else points[points["depth"].isin(pooled_depths)]
    chosen = sorted(pooled["depth"].unique())
    rows = []
    for scope, depth, subset in [*((f"d{d}", d, runs) for d, runs in points.groupby("depth")),
                                 (f"pooled d{chosen[0]}-d{chosen[-1]}" if chosen else "pooled",
                                  np.nan, pooled)]:
        for evaluation, at in subset.groupby("evaluation"):
            rows.append({"scope": scope, "depth": depth, "evaluation": evaluation,
                         "epoch": at["epoch"].mean(), "fraction": at["fraction"].mean(),
                         **_gain_row(at, metric, level)})
    return pd.DataFrame(rows, columns=["scope", "depth", "evaluation", "epoch", "fraction",
                                       *GAIN_COLUMNS[1:]])


# --- repetition -----------------------------------------------------------------------------

def repetition_table(df: pd.DataFrame, curves: pd.DataFrame, *,
                     metric: str = "val_bpb") -> pd.DataFrame:
    """Does repeating the corpus turn the memory paths' val BPB up before the standard's? For
    each main-grid run, from its curve (`movelab.scaling.load.load_curves`): the final val_bpb,
    the best over the evaluations and the epoch it came at, `rise` = final - best (0 while the
    curve still falls), the final train_loss, and the final and best BPB minus those of the
    standard run at the same depth (`gap_to_standard_*`; NaN without one). The metric is the
    curve column `metric` (columns `metric` and `<metric>_best`)."""
    best_column = f"{metric}_best"
    ordered = curves.sort_values(["run_id", "step"], ignore_index=True)
    by_run = ordered.groupby("run_id")
    best = ordered.loc[by_run[metric].idxmin(), ["run_id", metric, "epoch"]].set_index(
        "run_id").rename(columns={metric: best_column, "epoch": "best_epoch"})
    summary = by_run[[metric, "train_loss"]].last().join(best)
    table = main_rows(df)[["run_id", "depth", "path_label", "epochs"]].merge(
        summary, left_on="run_id", right_index=True, how="left")
    table["rise"] = table[metric] - table[best_column]
    standard = table[table["path_label"] == "standard"].set_index("depth")
    for which, column in (("final", metric), ("best", best_column)):
        table[f"gap_to_standard_{which}"] = table[column] - table["depth"].map(standard[column])
    return _by_depth_and_label(table)[
        ["depth", "path_label", "epochs", metric, best_column, "best_epoch", "rise",
         "train_loss", "gap_to_standard_final", "gap_to_standard_best"]]


# --- seed noise -----------------------------------------------------------------------------

def seed_noise(df: pd.DataFrame, *, level: float = LEVEL, metric: str = "val_bpb") -> pd.DataFrame:
    """`seed_summary` of the main rows, all seeds."""
    return seed_summary(main_rows(df, all_seeds=True), level=level, metric=metric)


def seed_summary(runs: pd.DataFrame, *, level: float = LEVEL,
                 metric: str = "val_bpb") -> pd.DataFrame:
    """`metric` over seeds for every (depth, path label) of `runs` with 2+ seeds: mean, standard
    deviation, and a t interval of the mean."""
    rows = []
    for (depth, label), group in runs.groupby(["depth", "path_label"], sort=False):
        bpb = group[metric].to_numpy(float)
        if len(bpb) < 2:
            continue
        mean, std = bpb.mean(), bpb.std(ddof=1)
        half = _t_quantile(level, len(bpb) - 1) * std / np.sqrt(len(bpb))
        rows.append({"depth": depth, "path_label": label, "n_seeds": len(bpb), "mean": mean,
                     "std": std, "low": mean - half, "high": mean + half})
    table = pd.DataFrame(rows, columns=["depth", "path_label", "n_seeds", "mean", "std", "low",
                                        "high"])
    return _by_depth_and_label(table)


def _by_depth_and_label(table: pd.DataFrame) -> pd.DataFrame:
    """`table` sorted by depth, then path label in reading order (variant_order)."""
    rank = {label: i for i, label in enumerate(variant_order(table["path_label"]))}
    return table.sort_values(["depth", "path_label"], ignore_index=True,
                             key=lambda c: c.map(rank) if c.name == "path_label" else c)


# --- tests of differences -------------------------------------------------------------------

ALPHA = 1 - LEVEL  # the significance level of every verdict (two-sided)
POWER = 0.8  # the power at which the smallest detectable difference is stated


def smallest_detectable(se: float, dof: float, *, alpha: float = ALPHA,
                        power: float = POWER) -> float:
    """The true difference a two-sided t-test at `alpha` detects with probability `power`, for a
    difference with standard error `se` and `dof` degrees of freedom (the noncentral t)."""
    if not (np.isfinite(se) and np.isfinite(dof) and dof > 0 and se > 0):
        return np.nan
    critical = stats.t.ppf(1 - alpha / 2, dof)

    def shortfall(ncp):  # the far tail is below 0.025 and underflows to NaN in scipy: drop it
        far = np.nan_to_num(stats.nct.cdf(-critical, dof, ncp))
        return stats.nct.sf(critical, dof, ncp) + far - power

    return float(se * optimize.brentq(shortfall, 0.0, 40.0))  # dof >= 1 reaches 80% below 40


def paired_difference(a: pd.Series, b: pd.Series, *, level: float = LEVEL) -> dict:
    """mean(a) - mean(b) for two arms indexed by seed. Where 2+ seeds are shared the test is
    paired over the shared seeds (same seed, same batches: the noise common to both cancels);
    otherwise Welch's unpaired t-test over all seeds of each arm. Returns the test, n (pairs, or
    the two arms' seeds "3+2"), the difference with its t interval, p, and `detectable`, the
    smallest difference this test detects at 80% power and the 5% level given the observed
    spread (the noncentral t)."""
    a, b = a.astype(float), b.astype(float)
    shared = a.index.intersection(b.index)
    out = {"test": "", "n": "", "difference": np.nan, "low": np.nan, "high": np.nan,
           "p": np.nan, "detectable": np.nan}
    if len(shared) >= 2:
        x, y = a[shared].to_numpy(), b[shared].to_numpy()
        out |= {"test": "paired t", "n": str(len(shared)), "difference": float((x - y).mean())}
        if np.ptp(x - y) == 0:
            return out
        result, dof = stats.ttest_rel(x, y), len(shared) - 1
        se = (x - y).std(ddof=1) / np.sqrt(len(shared))
    elif len(a) >= 2 and len(b) >= 2:
        x, y = a.to_numpy(), b.to_numpy()
        out |= {"test": "Welch t", "n": f"{len(x)}+{len(y)}", "difference": x.mean() - y.mean()}
        if np.ptp(x) == 0 and np.ptp(y) == 0:
            return out
        result = stats.ttest_ind(x, y, equal_var=False)
        dof, se = float(result.df), np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
    else:
        return out | {"n": f"{len(a)}+{len(b)}"}
    bounds = result.confidence_interval(level)
    return out | {"low": float(bounds.low), "high": float(bounds.high),
                  "p": float(result.pvalue), "detectable": smallest_detectable(se, dof)}


def holm(p) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of one family of tests (NaNs, untested, left out)."""
    p = np.asarray(p, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _verdict(row: dict, name: str, reference: str) -> str:
    if row["test"] == "":
        return f"not tested: {row['n'].replace('+', ' and ')} seeds (2+ each needed)"
    if np.isnan(row["p"]):
        return "not tested: identical results across seeds"
    if row["p_holm"] < ALPHA:
        return ("lower" if row["difference"] < 0 else "higher") + \
            f" {name} than {reference}, beyond seed noise (Holm)"
    return f"not resolved: detectable at this n is {row['detectable']:.3f} {name}"


def compare_to_standard(df: pd.DataFrame, labels=("LaVE x1", "MoVE x1", "MoVE x4"), *,
                        reference: str = "standard", level: float = LEVEL,
                        metric: str = "val_bpb") -> pd.DataFrame:
    """At each depth with repeated seeds, each label's mean `metric` minus the `reference`
    label's (`paired_difference`: paired by seed where both share 2+ seeds, else Welch), with
    Holm-Bonferroni adjusted p-values over every comparison of the table (`p_holm`, one family)
    and a `verdict` in words at the 5% level of p_holm; beside it the smallest difference the
    test could detect (`detectable`, 80% power at the 5% level)."""
    rows = []
    main = main_rows(df, all_seeds=True)
    name = METRIC_NAMES.get(metric, metric)
    for depth, runs in main.groupby("depth"):
        if runs.groupby("path_label").size().max() < 2:
            continue  # no repeated seeds at this depth
        by_label = {label: group.set_index("seed")[metric]
                    for label, group in runs.groupby("path_label")}
        base = by_label.get(reference, pd.Series(dtype=float))
        for label in labels:
            values = by_label.get(label, pd.Series(dtype=float))
            rows.append({"depth": depth, "path_label": label, "n_seeds": len(values),
                         "n_reference": len(base),
                         **paired_difference(values, base, level=level)})
    columns = ["depth", "path_label", "n_seeds", "n_reference", "test", "n",
               "difference", "low", "high", "p", "p_holm", "detectable", "verdict"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_holm"] = holm(table["p"])
    table["verdict"] = [_verdict(row, name, reference) for row in table.to_dict("records")]
    return table


# --- exchange rate --------------------------------------------------------------------------

@dataclass(frozen=True)
class ExchangeRate:
    """What dense (standard) model each memory model's BPB is worth, in active parameters N and
    in training compute C, from laws fitted to the standard runs (seed means per depth); the
    `*_lodo` laws leave the deepest standard depth out."""

    params_law: PowerLawFit | None  # standard val_bpb against params_active
    compute_law: PowerLawFit | None  # standard val_bpb against train_flops
    params_law_lodo: PowerLawFit | None
    compute_law_lodo: PowerLawFit | None
    pooled_std: float  # seed std used for memory models with one seed (pooled_seed_std)
    table: pd.DataFrame
    notes: tuple[str, ...]


def dense_equivalent(law: PowerLawFit, bpb) -> np.ndarray:
    """The x at which the dense law predicts `bpb`: (A / (bpb - E))^(1 / alpha); infinite when
    bpb is at or below the law's floor E (no dense model reaches it)."""
    gap = np.asarray(bpb, dtype=float) - law.E
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return np.where(gap > 0, (law.A / np.where(gap > 0, gap, 1.0)) ** (1 / law.alpha),
                        np.inf)


def pooled_seed_std(df: pd.DataFrame, metric: str = "val_bpb") -> float:
    """The seed standard deviation pooled over every (depth, path label) of the main rows with
    2+ seeds: sqrt of the dof-weighted mean variance (NaN without repeated seeds)."""
    cells = main_rows(df, all_seeds=True).groupby(["depth", "path_label"])[metric]
    dof, variance = cells.count() - 1, cells.var(ddof=1)
    keep = dof > 0
    return float(np.sqrt((dof[keep] * variance[keep]).sum() / dof[keep].sum())) if keep.any() \
        else np.nan


def _gain_columns(law: PowerLawFit | None, bpb: np.ndarray, draws: np.ndarray, own: np.ndarray,
                  name: str, level: float) -> dict:
    """Dense-equivalent x of each BPB, the gain x / own - 1, and its percentile interval over
    bootstrap draws: refit k of the law inverted at draw k of the BPB (`draws`, refits x
    models)."""
    if law is None:
        return {f"dense_{name}": np.full(len(bpb), np.nan), f"{name}_gain": np.nan,
                f"{name}_gain_low": np.nan, f"{name}_gain_high": np.nan}
    refits = np.array([dense_equivalent(refit, draw)
                       for refit, draw in zip(law.bootstrap_fits, draws)]).reshape(-1, len(bpb))
    bounds = percentile_interval(refits, level, axis=0).T.reshape(-1, 2)
    dense = dense_equivalent(law, bpb)
    return {f"dense_{name}": dense, f"{name}_gain": dense / own - 1,
            f"{name}_gain_low": bounds[:, 0] / own - 1, f"{name}_gain_high": bounds[:, 1] / own - 1}


def exchange_rate(df: pd.DataFrame, *, bootstrap: int = 200, seed: int = 0,
                  level: float = LEVEL, metric: str = "val_bpb") -> ExchangeRate:
    """Fit the standard models' `metric` (seed mean per depth) as power laws in active parameters
    N and in training compute C (train_flops; with tokens tied to the standard model's N, C grows
    about as N^2), and invert them at each LaVE/MoVE main model's BPB (seed mean): the dense
    model worth that BPB has `dense_params` active parameters and trains on `dense_compute`.
    `params_gain` = dense_params / own active params - 1 (`compute_gain` likewise): +0.3 means
    worth a dense model 30% larger; NEGATIVE means worse than a dense model of its own size.

    Intervals are percentiles over `bootstrap` draws, each a refit of the law on resampled
    standard points inverted at a draw of the model's BPB: mean + s / sqrt(n) t_(n-1) with s its
    own seed std when it has n >= 2 seeds, else mean + `pooled_std` z (the pooled seed std; 0
    when no run of the sweep has repeated seeds); `bpb_sd_source` says which. `*_lodo` columns:
    the same from laws fitted without the deepest standard depth. `delta_bpb` is the difference
    to the standard mean at the same depth (positive: worse); `extrapolated` marks dense
    equivalents outside the standard runs' N.
    """
    main = main_rows(df, all_seeds=True)
    cells = main.groupby(["depth", "path_label"], sort=False).agg(
        value_path=("value_path", "first"), slots=("slots", "first"),
        n_seeds=(metric, "size"), **{metric: (metric, "mean")}, std=(metric, "std"),
        params_active=("params_active", "first"), train_flops=("train_flops", "first"))
    cells = _by_depth_and_label(cells.reset_index())
    standard = cells[cells["path_label"] == "standard"]
    n_depths, notes = len(standard), []
    laws = {}
    for x in ("params_active", "train_flops"):
        for lodo in (False, True):
            points = standard.iloc[:-1] if lodo else standard
            laws[x, lodo], note = _fit_law(points[x], points[metric], len(points),
                                           bootstrap=bootstrap, seed=seed)
            if note and not lodo:
                notes.append(f"no dense law: standard runs at {note}")
    notes = sorted(set(notes))
    pooled = pooled_seed_std(df, metric)
    memory = cells[cells["value_path"] != "standard"].merge(
        standard[["depth", metric]].rename(columns={metric: "standard_bpb"}),
        on="depth", how="left").reset_index(drop=True)
    own_sd = memory["n_seeds"] >= 2
    memory["bpb_sd"] = np.where(own_sd, memory["std"], 0.0 if np.isnan(pooled) else pooled)
    memory["bpb_sd_source"] = np.where(own_sd, "own seeds", "pooled seed std" if np.isfinite(
        pooled) else "no repeated seeds in the sweep: law refits only")
    rng = np.random.default_rng(seed)
    dof = np.maximum(memory["n_seeds"].to_numpy() - 1, 1)
    noise = np.where(own_sd, rng.standard_t(dof, (bootstrap, len(memory))),
                     rng.standard_normal((bootstrap, len(memory))))
    bpb = memory[metric].to_numpy(float)
    draws = bpb + noise * (memory["bpb_sd"] / np.sqrt(memory["n_seeds"])).to_numpy(float)
    columns = {}
    for x, name in (("params_active", "params"), ("train_flops", "compute")):
        own = memory[x].to_numpy(float)
        columns |= _gain_columns(laws[x, False], bpb, draws, own, name, level)
        lodo = _gain_columns(laws[x, True], bpb, draws, own, name, level)
        columns |= {f"{name}_gain_lodo{end}": lodo[f"{name}_gain{end}"]
                    for end in ("", "_low", "_high")}
    table = memory[["depth", "path_label", "slots", "n_seeds", metric, "bpb_sd",
                    "bpb_sd_source", "standard_bpb", "params_active", "train_flops"]].assign(
        delta_bpb=memory[metric] - memory["standard_bpb"], **columns)
    if laws["params_active", False] is not None:
        table["extrapolated"] = ~table["dense_params"].between(
            standard["params_active"].min(), standard["params_active"].max())
    else:
        table["extrapolated"] = False
    table["note"] = np.select(
        [table["standard_bpb"].isna(), table["delta_bpb"] > 0, np.isinf(table["dense_params"])],
        ["no standard run at this depth", "worse than the standard run at this depth",
         "below the dense law's floor E: no dense model reaches it"], "")
    deepest = f"d{standard['depth'].max()}" if n_depths else "none"
    return ExchangeRate(laws["params_active", False], laws["train_flops", False],
                        laws["params_active", True], laws["train_flops", True], pooled,
                        table, tuple(notes) + (f"lodo: laws without the deepest standard "
                                               f"depth ({deepest})",))


# --- joint law ------------------------------------------------------------------------------

@dataclass(frozen=True)
class JointLawSelection:
    """Forms of L(N, M) fitted without the deepest depth and scored on it, best first."""

    heldout_depth: int | None
    scores: tuple[HeldoutError, ...]
    memory_free_rmse: float  # held-out RMSE of L(N) = E + A N^-alpha, no memory term at all
    table: pd.DataFrame  # form, rmse, mae, runs fitted / held out, parameters
    predictions: pd.DataFrame  # held-out runs: form, slots, observed, predicted
    notes: tuple[str, ...]


def select_joint_law(df: pd.DataFrame, *, heldout_depth: int | None = None,
                     min_fit_depths: int = 3, n_column: str = "params_active",
                     metric: str = "val_bpb") -> JointLawSelection:
    """`compare_forms` on the standard and MoVE main-grid runs (N = `n_column`, by default the
    active parameters, which include MoVE's routers; M = slots, 0 for standard), holding out
    `heldout_depth` (the deepest if None) and fitting on the shallower depths. Forms with as
    many parameters as fitted runs are skipped; so is everything when fewer than
    `min_fit_depths` depths remain to fit. The table's `params` hold each form's memory term
    (B and gamma, gamma, or b and c): read them before ranking forms by memory."""
    runs = main_rows(df).query("path_label == 'standard' or value_path == 'move'")
    depths = sorted(runs["depth"].unique())
    if heldout_depth is None and depths:
        heldout_depth = int(depths[-1])
    fit_depths = [d for d in depths if d < (heldout_depth or 0)]
    if len(fit_depths) < min_fit_depths or heldout_depth not in depths:
        return _skipped_selection(f"{len(depths)} depth(s) of standard/MoVE runs; holding one "
                                  f"out needs {min_fit_depths} shallower ones to fit")
    runs = runs[runs["depth"] <= heldout_depth]
    heldout = (runs["depth"] == heldout_depth).to_numpy()
    if not (runs.loc[~heldout, "value_path"] == "move").any():
        return _skipped_selection("no MoVE runs to fit the memory term on")
    n_fit = int((~heldout).sum())
    n_params = {form: len(FORMS[form].params(np.zeros(5))) for form in FORMS}
    forms = [form for form in FORMS if n_params[form] < n_fit]
    notes = tuple(f"{form}: {n_params[form]} parameters, {n_fit} runs to fit; skipped"
                  for form in FORMS if form not in forms)
    scores = compare_forms(runs[n_column], runs["slots"], runs[metric], heldout, forms=forms)
    table = pd.DataFrame([{"form": s.form, "rmse": s.rmse, "mae": s.mae, "n_fit": n_fit,
                           "n_heldout": int(heldout.sum()), "params": s.fit.params}
                          for s in scores], columns=_JOINT_COLUMNS)
    slots = runs.loc[heldout, "slots"].to_numpy()
    predictions = pd.DataFrame([{"form": s.form, "slots": m, "observed": o, "predicted": p}
                                for s in scores
                                for m, o, p in zip(slots, s.observed, s.predicted)],
                               columns=_PREDICTION_COLUMNS)
    baseline = fit_power_law(runs.loc[~heldout, n_column], runs.loc[~heldout, metric])
    errors = baseline.predict(runs.loc[heldout, n_column]) - runs.loc[heldout, metric]
    return JointLawSelection(int(heldout_depth), tuple(scores), float(np.sqrt(np.mean(
        errors ** 2))), table, predictions, notes)


_JOINT_COLUMNS = ["form", "rmse", "mae", "n_fit", "n_heldout", "params"]
_PREDICTION_COLUMNS = ["form", "slots", "observed", "predicted"]


def _skipped_selection(note: str) -> JointLawSelection:
    return JointLawSelection(None, (), np.nan, pd.DataFrame(columns=_JOINT_COLUMNS),
                             pd.DataFrame(columns=_PREDICTION_COLUMNS), (note,))


# --- the fitters on known answers -----------------------------------------------------------

def published_chinchilla_fits(reference_dir: Path | str | None = None) -> dict[str, dict]:
    """The table of published fits in the reference README (`reference_dir`, by default
    `find_reference_dir()`): fit name -> {parameter: value, or (low, high) for an interval}.
    Empty when the README is absent."""
    reference_dir = find_reference_dir() if reference_dir is None else reference_dir
    readme = Path(reference_dir) / "README.md"
    if not readme.exists():
        return {}
    fits, names = {}, None
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or set("".join(cells)) <= set("-: "):
            continue
        if cells[0] == "fit":
            names = cells[1:]
        elif names:
            fits[cells[0]] = {n: _published_value(v) for n, v in zip(names, cells[1:])}
    return fits


def _published_value(cell: str):
    interval = re.fullmatch(r"([\d.]+)\s*[-\u2013]\s*([\d.]+)", cell)
    return (float(interval[1]), float(interval[2])) if interval else float(cell)


@dataclass(frozen=True)
class ChinchillaReproduction:
    fit: ChinchillaFit | None
    table: pd.DataFrame  # parameter, ours with interval, published values and interval
    notes: tuple[str, ...]


def chinchilla_reproduction(reference_dir: Path | str | None = None, *, bootstrap: int = 100,
                            seed: int = 0, start_grid: dict = EPOCH_START_GRID,
                            level: float = LEVEL) -> ChinchillaReproduction:
    """Epoch AI's replication of Chinchilla Approach 3 on the Figure 4 points (the 5 highest
    losses dropped, D = C / 6N), beside the fits published in the reference README
    (`reference_dir`, by default `find_reference_dir()`)."""
    reference_dir = find_reference_dir() if reference_dir is None else reference_dir
    points = Path(reference_dir) / "chinchilla_fig4_points.csv"
    columns = ["parameter", "ours", "ours_low", "ours_high", "epoch_huber", "epoch_low",
               "epoch_high", "hoffmann"]
    if not points.exists():
        return ChinchillaReproduction(None, pd.DataFrame(columns=columns),
                                      (f"no reference points at {points}; skipped",))
    data = pd.read_csv(points).sort_values("loss").iloc[:-5]
    n = data["Model Size"].to_numpy(float)
    fit = fit_chinchilla(n, data["Training FLOP"].to_numpy(float) / (6 * n),
                         data["loss"].to_numpy(float), bootstrap=bootstrap, seed=seed,
                         start_grid=start_grid)
    published = published_chinchilla_fits(reference_dir)
    pick = lambda word: next((v for k, v in published.items() if word in k), {})  # noqa: E731
    huber, spread, hoffmann = pick("Huber"), pick("interval"), pick("Hoffmann")
    rows = [{"parameter": name, "ours": value, **dict(zip(("ours_low", "ours_high"),
                                                          interval(fit, name, level))),
             "epoch_huber": huber.get(name, np.nan),
             "epoch_low": spread.get(name, (np.nan, np.nan))[0],
             "epoch_high": spread.get(name, (np.nan, np.nan))[1],
             "hoffmann": hoffmann.get(name, np.nan)} for name, value in fit.params.items()]
    notes = () if published else (f"no published fits in {reference_dir}/README.md",)
    return ChinchillaReproduction(fit, pd.DataFrame(rows, columns=columns), notes)


def synthetic_recovery(laws: dict = SYNTHETIC_LAWS, *, compute=np.geomspace(1e11, 1e14, 5),
                       noise: float = 0.005, bootstrap: int = 100, seed: int = 0,
                       level: float = LEVEL) -> pd.DataFrame:
    """Fit `fit_power_law` to losses drawn from known laws (E, A, alpha) at `compute`, each
    multiplied by log-normal noise of relative size `noise`: per law and parameter, the truth,
    the estimate, its bootstrap interval and whether the interval covers the truth."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, truth in laws.items():
        E, A, alpha = truth
        loss = (E + A * compute ** -alpha) * np.exp(rng.normal(0, noise, len(compute)))
        fit = fit_power_law(compute, loss, bootstrap=bootstrap, seed=seed)
        for parameter, true in zip(("E", "A", "alpha"), truth):
            low, high = interval(fit, parameter, level)
            rows.append({"law": name, "parameter": parameter, "true": true,
                         "fitted": fit.params[parameter], "low": low, "high": high,
                         "covered": low <= true <= high})
    return pd.DataFrame(rows)
