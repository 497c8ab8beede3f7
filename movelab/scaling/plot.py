"""Plotting primitives: each draws one kind of panel on a given matplotlib Axes from the tables
of movelab.scaling.analysis (or the runs DataFrame) and returns the Axes. A panel whose data is
missing says so on the panel (`note`) instead of drawing nothing."""

from __future__ import annotations

import re
from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter

from movelab.scaling.analysis import (ChinchillaReproduction, ComputeLaws, ExchangeRate,
                                      JointLawSelection, interval, main_rows, prediction_band,
                                      seed_summary)
from movelab.scaling.load import label_order

FLOPS_CONVENTION = "6 x active params + 12 L d_kv T per token"
_OTHER_COLORS = sns.color_palette("Dark2")


@contextmanager
def style():
    """The figures' look, and what makes their files reproducible: a fixed SVG hash salt."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"),
          "svg.hashsalt": "movelab", "legend.frameon": False, "figure.dpi": 100}
    with mpl.rc_context(rc):
        yield


def label_colors(labels) -> dict[str, tuple]:
    """standard black, LaVE in blues, MoVE xk from light to dark red by log2 k (x1..x32), any
    other label a qualitative colour in the order given."""
    colors, others = {}, iter(_OTHER_COLORS * 3)
    reds, blues = mpl.colormaps["YlOrRd"], mpl.colormaps["Blues"]
    for label in labels:
        move, lave = re.fullmatch(r"MoVE x(\d+)", label), re.fullmatch(r"LaVE x(\d+)", label)
        if label == "standard":
            colors[label] = (0.1, 0.1, 0.1, 1.0)
        elif move:
            colors[label] = reds(0.35 + 0.6 * min(np.log2(int(move[1])) / 5, 1))
        elif lave:
            colors[label] = blues(0.45 + 0.25 * int(lave[1]))
        else:
            colors[label] = next(others)
    return colors


def note(ax: Axes, text: str) -> Axes:
    """An empty panel that says why it is empty."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes,
            fontsize="small", color="0.35")
    return ax


def _log_grid(values, pad: float = 1.15, n: int = 100) -> np.ndarray:
    return np.geomspace(np.min(values) / pad, np.max(values) * pad, n)


def _log_x(ax: Axes, values, **kwargs) -> None:
    """Log x axis with engineering labels (100k, 1M, 10G): at decades, at 1, 2 and 5 x 10^k when
    `values` span less than 2.5 decades, at a few round values within one decade; minor ticks
    unlabelled (their labels collide)."""
    ax.set(xscale="log", **kwargs)
    decades = np.ptp(np.log10(values))
    if decades < 1:
        ax.xaxis.set_major_locator(MaxNLocator(4))
    elif decades < 2.5:
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())


def draw_interval(ax: Axes, at, center, low, high, *, vertical: bool = False, color="C0",
                  marker: str = "o", label: str | None = None) -> None:
    """A point at `center` and a capped bar from `low` to `high`, placed at `at` on the other
    axis. (A bootstrap percentile interval need not contain its point estimate, so this draws
    the bounds themselves rather than error lengths.)"""
    bar, point = ([at, at], [low, high]), (at, center)
    if not vertical:
        bar, point = bar[::-1], point[::-1]
    ax.plot(*bar, color=color, lw=1.2, marker="_" if vertical else "|", ms=6)
    ax.plot(*point, color=color, marker=marker, ms=5, ls="", label=label, zorder=4)


def _law_label(label: str, fit) -> str:
    low, high = interval(fit, "alpha")
    return f"{label}: alpha {fit.alpha:.3f} [{low:.3f}, {high:.3f}]"


def plot_bpb_vs_compute(ax: Axes, df: pd.DataFrame, laws: ComputeLaws) -> Axes:
    """val BPB of the main-grid runs against compute, one colour per value path, with each
    path's fitted L(C) and the 95% band of its bootstrap refits."""
    runs = main_rows(df)
    if runs.empty:
        return note(ax, "no runs yet")
    labels = label_order(runs["path_label"])
    colors = label_colors(labels)
    for label in labels:
        points = runs[runs["path_label"] == label]
        fit = laws.fits.get(label)
        ax.scatter(points[laws.compute], points["val_bpb"], s=18, color=colors[label],
                   label=_law_label(label, fit) if fit else f"{label} (no fit)", zorder=3)
        if fit:
            x = _log_grid(points[laws.compute])
            ax.plot(x, fit.predict(x), color=colors[label], lw=1)
            ax.fill_between(x, *prediction_band(fit, x), color=colors[label], alpha=0.12, lw=0)
    _log_x(ax, runs[laws.compute], xlabel=f"training FLOPs ({FLOPS_CONVENTION})",
           ylabel="val BPB")
    ax.legend(fontsize="x-small", title="L(C) = E + A C^-alpha, 95% bootstrap",
              title_fontsize="x-small")
    return ax


def plot_gap_to_standard(ax: Axes, df: pd.DataFrame, laws: ComputeLaws) -> Axes:
    """Each main-grid run's BPB minus the standard law's prediction at its compute."""
    reference = laws.fits.get("standard")
    if reference is None:
        return note(ax, "no standard L(C) fit yet: the gap to it needs one")
    runs = main_rows(df)
    labels = label_order(runs["path_label"])
    colors = label_colors(labels)
    for label in labels:
        points = runs[runs["path_label"] == label].sort_values(laws.compute)
        gap = points["val_bpb"] - reference.predict(points[laws.compute])
        ax.plot(points[laws.compute], gap, "o-", ms=4, lw=1, color=colors[label])
    x = _log_grid(runs[laws.compute])
    low, high = prediction_band(reference, x)
    ax.fill_between(x, low - reference.predict(x), high - reference.predict(x), color="0.5",
                    alpha=0.15, lw=0, label="standard fit, 95% band")
    ax.axhline(0, color="0.2", lw=0.8)
    _log_x(ax, runs[laws.compute], xlabel="training FLOPs", ylabel="val BPB - standard L(C)",
           title="gap to the standard law (colours as on the left)")
    ax.legend(fontsize="x-small")
    return ax


def plot_bpb_vs_slots(ax: Axes, df: pd.DataFrame, depth: int) -> Axes:
    """MoVE val BPB against slots M at one depth (every seed a dot, the seed mean a line), with
    the standard and LaVE runs at that depth as horizontal reference lines."""
    runs = main_rows(df, all_seeds=True).query("depth == @depth")
    move = runs[runs["value_path"] == "move"]
    if move.empty:
        return note(ax, f"d{depth}: no MoVE runs yet")
    colors = label_colors(label_order(runs["path_label"]))
    means = move.groupby("slots")["val_bpb"].mean()
    ax.plot(means.index, means.to_numpy(), color="0.5", lw=1, label="MoVE (seed mean)")
    ax.scatter(move["slots"], move["val_bpb"], s=14, c=[colors[label] for label in
                                                          move["path_label"]], zorder=3)
    for label in ("standard", "LaVE x1", "LaVE x2"):
        bpb = runs.loc[runs["path_label"] == label, "val_bpb"]
        if len(bpb):
            ax.axhline(bpb.mean(), color=colors[label], lw=1, ls="--" if label == "standard"
                       else ":", label=label + (f" (mean of {len(bpb)})" if len(bpb) > 1 else ""))
    ax.set_xscale("log", base=2)
    ax.set(xlabel="MoVE slots M", ylabel="val BPB", title=f"depth {depth}")
    ax.legend(fontsize="x-small")
    return ax


def plot_slot_gains(ax: Axes, gains: pd.DataFrame) -> Axes:
    """BPB removed per doubling of slots at each depth, with its regression interval."""
    rated = gains.dropna(subset=["gain_per_doubling"])
    if rated.empty:
        return note(ax, "no depth has MoVE runs at two slot counts yet")
    for row in rated.itertuples():
        draw_interval(ax, row.depth, row.gain_per_doubling, row.low, row.high, vertical=True,
                      color="C3")
    ax.axhline(0, color="0.2", lw=0.8)
    ax.set(xlabel="depth", ylabel="BPB gained per doubling of M", xticks=rated["depth"],
           title="slope of BPB on log2 M (95% t interval)")
    return ax


def plot_val_over_epochs(ax: Axes, curves: pd.DataFrame, depth: int) -> Axes:
    """val BPB against epochs seen at each evaluation of the seed-0 runs at `depth` in `curves`
    (pass the main-grid runs' curves), one line per value path, its best evaluation ringed."""
    runs = curves[(curves["depth"] == depth) & (curves["seed"] == 0)]
    if runs.empty:
        return note(ax, f"d{depth}: no curves yet")
    labels = label_order(runs["path_label"])
    colors = label_colors(labels)
    for label in labels:
        curve = runs[runs["path_label"] == label].sort_values("step")
        best = curve.loc[curve["val_bpb"].idxmin()]
        ax.plot(curve["epoch"], curve["val_bpb"], "o-", ms=3, lw=1, color=colors[label],
                label=label)
        ax.scatter(best["epoch"], best["val_bpb"], s=60, facecolors="none",
                   edgecolors=colors[label], lw=1.2, zorder=4)
    ax.set(xlabel="epochs seen", ylabel="val BPB",
           title=f"depth {depth}: val BPB over {runs['epoch'].max():.1f} epochs (ring: best)")
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def plot_train_vs_val(ax: Axes, repetition: pd.DataFrame) -> Axes:
    """Final train loss against final val BPB of the runs of `repetition_table` (a marker shape
    per depth, a colour per value path): further left at the same height is memorised, not
    learned."""
    if repetition.empty:
        return note(ax, "no runs yet")
    colors = label_colors(label_order(repetition["path_label"]))
    for (depth, runs), marker in zip(repetition.groupby("depth"), "osD^v"):
        ax.scatter(runs["train_loss"], runs["val_bpb"], marker=marker, s=30, zorder=3,
                   c=[colors[label] for label in runs["path_label"]])
        ax.scatter([], [], marker=marker, color="0.5", label=f"depth {depth}")
    ax.set(xlabel="final train loss (nats/token)", ylabel="final val BPB",
           title="end of training (colours as on the left)")
    ax.legend(fontsize="x-small")
    return ax


def plot_accounting(ax: Axes, table: pd.DataFrame, column: str, linestyle: str = "-") -> Axes:
    """One accounting quantity across value paths (x) for each preset (a line per preset, which
    `linestyle` draws; zeros are left out of the log scale)."""
    order = label_order(table["path_label"])
    palette = sns.color_palette("crest", table["preset"].nunique())
    for color, (preset, rows) in zip(palette, table.groupby("preset", sort=False)):
        values = rows.set_index("path_label")[column].reindex(order).replace(0, np.nan)
        ax.plot(range(len(order)), values.to_numpy(), marker="o", ls=linestyle, ms=3, lw=1,
                color=color, label=preset if linestyle == "-" else None)
    ax.set_xticks(range(len(order)), order, rotation=60, ha="right")
    ax.set_yscale("log")
    return ax


def plot_dense_law(ax: Axes, df: pd.DataFrame, exchange: ExchangeRate) -> Axes:
    """Standard runs' BPB against active parameters with the fitted dense law and its band;
    the LaVE/MoVE runs at their own active parameters, for the vertical gap."""
    runs = main_rows(df)
    if runs.empty:
        return note(ax, "no runs yet")
    labels = label_order(runs["path_label"])
    colors = label_colors(labels)
    for label in labels:
        points = runs[runs["path_label"] == label]
        ax.scatter(points["params_active"], points["val_bpb"], s=16 if label == "standard"
                   else 9, color=colors[label], zorder=3, label=label)
    law = exchange.params_law
    if law is not None:
        x = _log_grid(runs["params_active"])
        ax.plot(x, law.predict(x), color="0.1", lw=1, label=_law_label("dense law", law))
        ax.fill_between(x, *prediction_band(law, x), color="0.5", alpha=0.15, lw=0)
    _log_x(ax, runs["params_active"], xlabel="active parameters N (matmul weights)",
           ylabel="val BPB",
           title="dense law L(N) = E + A N^-alpha" if law else "too few standard runs to fit")
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def plot_exchange_gains(ax: Axes, exchange: ExchangeRate, quantity: str = "params") -> Axes:
    """`quantity`_gain (dense equivalent / own - 1) per run and depth with bootstrap intervals;
    below zero: worse than a dense model of the run's own size."""
    table = exchange.table.dropna(subset=[f"{quantity}_gain"])
    if table.empty:
        return note(ax, "\n".join(exchange.notes) or "no LaVE/MoVE runs to rate yet")
    labels = label_order(table["path_label"])
    colors = label_colors(labels)
    offsets = dict(zip(labels, np.linspace(-0.6, 0.6, len(labels))))
    for label in labels:
        rows = table[table["path_label"] == label]
        for i, (depth, gain, low, high) in enumerate(zip(
                rows["depth"], *(100 * rows[f"{quantity}_gain{end}"] for end in ("", "_low",
                                                                                 "_high")))):
            draw_interval(ax, depth + offsets[label], gain, low, high, vertical=True,
                          color=colors[label], label=label if i == 0 else None)
    ax.axhline(0, color="0.2", lw=0.8)
    what = "active params" if quantity == "params" else "train FLOPs/token"
    ax.set(xlabel="depth", ylabel=f"% gain in dense-equivalent {what}",
           xticks=sorted(table["depth"].unique()),
           title=f"dense equivalent, in {what}")
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def plot_heldout(ax: Axes, selection: JointLawSelection) -> Axes:
    """Held-out runs' BPB against log(1 + M), observed and as each joint form predicts it."""
    if not selection.scores:
        return note(ax, "joint law not compared: " + "; ".join(selection.notes))
    first = selection.predictions[selection.predictions["form"] == selection.scores[0].form]
    ax.scatter(np.log1p(first["slots"]), first["observed"], color="0.1", s=20, zorder=3,
               label="observed")
    for i, score in enumerate(selection.scores):
        rows = selection.predictions[selection.predictions["form"] == score.form]
        ax.plot(np.log1p(rows["slots"]), rows["predicted"], "o--", ms=3, lw=1, color=f"C{i}",
                label=f"{score.form}: RMSE {score.rmse:.4f}")
    ax.set(xlabel="log(1 + M)  (M = 0: standard)", ylabel="val BPB",
           title=f"held out: depth {selection.heldout_depth}, fitted on shallower depths")
    ax.legend(fontsize="x-small")
    return ax


def plot_variant_summary(ax: Axes, runs: pd.DataFrame) -> Axes:
    """val BPB per path label (one row each): every seed a dot; with several seeds, the mean
    and its 95% t interval. A dashed line marks the standard model's mean."""
    if runs.empty:
        return note(ax, "no runs at this depth yet")
    labels = label_order(runs["path_label"])
    colors = label_colors(labels)
    noise = seed_summary(runs).set_index("path_label")
    for y, label in enumerate(labels):
        bpb = runs.loc[runs["path_label"] == label, "val_bpb"]
        ax.scatter(bpb, np.full(len(bpb), y), s=14, color=colors[label], alpha=0.6, zorder=3)
        if label in noise.index:
            row = noise.loc[label]
            draw_interval(ax, y, row["mean"], row["low"], row["high"], color=colors[label],
                          marker="D")
    if "standard" in labels:
        ax.axvline(runs.loc[runs["path_label"] == "standard", "val_bpb"].mean(), color="0.2",
                   lw=0.8, ls="--")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(xlabel="val BPB (dots: seeds; diamonds: mean, 95% t interval)")
    return ax


def plot_seed_differences(ax: Axes, comparison: pd.DataFrame) -> Axes:
    """Mean BPB difference to standard (Welch 95% interval, p) per depth and path label."""
    tested = comparison.dropna(subset=["low"])
    if tested.empty:
        return note(ax, "no depth has 2+ seeds of standard and a variant yet")
    colors = label_colors(label_order(tested["path_label"]))
    rows = list(tested.itertuples())
    for y, row in enumerate(rows):
        draw_interval(ax, y, row.difference, row.low, row.high, color=colors[row.path_label])
    ax.axvline(0, color="0.2", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"d{r.depth} {r.path_label} (p={r.p:.2g})" for r in rows])
    ax.invert_yaxis()
    ax.set(xlabel="val BPB minus standard (Welch 95% interval)")
    return ax


def plot_published_comparison(ax: Axes, reproduction: ChinchillaReproduction) -> Axes:
    """Our Chinchilla parameters and bootstrap intervals beside Epoch AI's published fit and
    interval, each divided by Epoch's value (1 = agreement)."""
    table = reproduction.table.dropna(subset=["epoch_huber"])
    if table.empty:
        return note(ax, "Chinchilla reproduction skipped: " + "; ".join(reproduction.notes))
    for y, row in enumerate(table.itertuples()):
        scale = row.epoch_huber
        draw_interval(ax, y - 0.12, row.ours / scale, row.ours_low / scale,
                      row.ours_high / scale, color="C3", label="movelab" if y == 0 else None)
        draw_interval(ax, y + 0.12, 1.0, row.epoch_low / scale, row.epoch_high / scale,
                      color="0.3", marker="s", label="Epoch AI (published)" if y == 0 else None)
    ax.set_yticks(range(len(table)), table["parameter"])
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="value / Epoch's Huber fit (95% bootstrap intervals)",
           title="Chinchilla Approach 3 on Fig. 4 points")
    ax.legend(fontsize="x-small")
    return ax


def plot_recovery(ax: Axes, recovery: pd.DataFrame, parameter: str) -> Axes:
    """For each synthetic law, the fitted `parameter` with its bootstrap interval and the truth."""
    rows = recovery[recovery["parameter"] == parameter].reset_index(drop=True)
    for y, row in rows.iterrows():
        draw_interval(ax, y, row["fitted"], row["low"], row["high"],
                      label="fit, 95% bootstrap" if y == 0 else None)
        ax.scatter(row["true"], y, marker="x", color="C3", s=40, zorder=4,
                   label="truth" if y == 0 else None)
    ax.set_yticks(range(len(rows)), rows["law"])
    ax.invert_yaxis()
    ax.set(title=f"synthetic recovery: {parameter}")
    ax.legend(fontsize="x-small")
    return ax


IMAGE_METRICS = {"bits_per_token": "bits per image token (test)",
                 "fid": "FID (classifier features, vs test)",
                 "class_accuracy": "class accuracy of samples"}


def plot_metric_vs_compute(ax: Axes, df: pd.DataFrame, column: str,
                           ylabel: str | None = None) -> Axes:
    """An image metric of the main-grid runs (seed 0) against training FLOPs, a line per value
    path; the seed repeats as small dots at their depth."""
    runs = df.dropna(subset=[column])
    grid = main_rows(runs)
    if grid.empty:
        return note(ax, f"no runs with {column} yet")
    labels = label_order(runs["path_label"])
    colors = label_colors(labels)
    for label in labels:
        points = grid[grid["path_label"] == label].sort_values("train_flops")
        ax.plot(points["train_flops"], points[column], "o-", ms=4, lw=1, color=colors[label],
                label=label)
        repeats = runs[(runs["path_label"] == label) & runs["in_seeds"] & (runs["seed"] != 0)]
        ax.scatter(repeats["train_flops"], repeats[column], s=9, color=colors[label], alpha=0.6)
    _log_x(ax, runs["train_flops"], xlabel=f"training FLOPs ({FLOPS_CONVENTION})",
           ylabel=ylabel or IMAGE_METRICS.get(column, column))
    ax.legend(fontsize="x-small")
    return ax


def plot_metric_vs_slots(ax: Axes, df: pd.DataFrame, column: str,
                         ylabel: str | None = None) -> Axes:
    """An image metric of MoVE runs against slots M, a line per depth (seed means, every seed a
    dot), with each depth's standard run as a dashed line in the same colour."""
    runs = main_rows(df.dropna(subset=[column]), all_seeds=True)
    move = runs[runs["value_path"] == "move"]
    if move.empty:
        return note(ax, f"no MoVE runs with {column} yet")
    depths = sorted(runs["depth"].unique())
    palette = dict(zip(depths, sns.color_palette("crest", len(depths))))
    for depth in depths:
        at = move[move["depth"] == depth]
        means = at.groupby("slots")[column].mean()
        ax.plot(means.index, means.to_numpy(), "-", lw=1, color=palette[depth], label=f"d{depth}")
        ax.scatter(at["slots"], at[column], s=12, color=palette[depth], zorder=3)
        standard = runs[(runs["depth"] == depth) & (runs["path_label"] == "standard")][column]
        if len(standard):
            ax.axhline(standard.mean(), color=palette[depth], lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="MoVE slots M", ylabel=ylabel or IMAGE_METRICS.get(column, column),
           title="MoVE by slots (dashed: standard at that depth)")
    ax.legend(fontsize="x-small")
    return ax
