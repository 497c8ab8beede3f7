"""Plotting primitives: each draws one kind of panel on a given matplotlib Axes from the tables
of movelab.scaling.analysis (or the runs DataFrame) and returns the Axes. A panel whose data is
missing says so on the panel (`note`) instead of drawing nothing."""

from __future__ import annotations

from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import (EngFormatter, LogLocator, MaxNLocator, NullFormatter,
                               NullLocator)

from movelab.scaling.analysis import (ChinchillaReproduction, ComputeLaws, ExchangeRate,
                                      JointLawSelection, band_is_drawn, interval, law_grid,
                                      main_rows, prediction_band, seed_summary)
from movelab.variant import Variant, variant_order

FLOPS_CONVENTION = "6 x active params + 12 L d_kv T per token"
_OTHER_COLORS = sns.color_palette("Dark2")
METRIC_LABELS = {"val_bpb": "val BPB", "bits_per_token": "bits per image token (test)",
                 "fid": "FID (classifier features, vs test)",
                 "class_accuracy": "class accuracy of samples"}


@contextmanager
def style():
    """The figures' look, and what makes their files reproducible: a fixed SVG hash salt."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"),
          "svg.hashsalt": "movelab", "legend.frameon": False, "figure.dpi": 100}
    with mpl.rc_context(rc):
        yield


def label_colors(labels) -> dict[str, tuple]:
    """standard black, LaVE in blues, MoVE xk from light to dark red by log2 k (x1..x32), any
    other label a qualitative colour in the order given (by `Variant.color_key`)."""
    colors, others = {}, iter(_OTHER_COLORS * 3)
    reds, blues = mpl.colormaps["YlOrRd"], mpl.colormaps["Blues"]
    for label in labels:
        key = Variant.from_text(label).color_key
        if key == ("standard",):
            colors[label] = (0.1, 0.1, 0.1, 1.0)
        elif key and key[0] == "move":
            colors[label] = reds(0.35 + 0.6 * min(np.log2(key[1]) / 5, 1))
        elif key and key[0] == "lave":
            colors[label] = blues(0.45 + 0.25 * key[1])
        else:
            colors[label] = next(others)
    return colors


def note(ax: Axes, text: str) -> Axes:
    """An empty panel that says why it is empty."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes,
            fontsize="small", color="0.35")
    return ax


def limit_to(ax: Axes, values, *, axis: str = "y", margin: float = 0.08) -> None:
    """Axis limits from the values drawn as points (never from a band or a law's line), with a
    margin of `margin` of their span on each side (multiplicative on a log axis)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    low, high = values.min(), values.max()
    if (ax.get_yscale() if axis == "y" else ax.get_xscale()) == "log":
        ratio = (high / low) ** margin if high > low else 1.1
        limits = (low / ratio, high * ratio)
    else:
        pad = margin * (high - low) if high > low else 0.05 * max(abs(high), 1e-3)
        limits = (low - pad, high + pad)
    (ax.set_ylim if axis == "y" else ax.set_xlim)(*limits)


def slot_ticks(ax: Axes, slots) -> None:
    """A log2 slot axis ticked at the slot counts drawn (M = 3, 6, 12, ... at d6 falls between
    powers of two), labelled as plain numbers."""
    ax.set_xscale("log", base=2)
    values = sorted({int(m) for m in slots})
    ax.set_xticks(values, [str(m) for m in values])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_minor_locator(NullLocator())


def hollow(color) -> dict:
    """Marker style of a single-seed point: its colour as the edge, white inside."""
    return {"facecolors": "white", "edgecolors": [color], "linewidths": 1.1}


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


def log_y(ax: Axes) -> None:
    """Log y axis labelled at 1, 2 and 5 x 10^k in plain numbers, minor ticks unlabelled."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


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


def _law_label(label: str, fit, flags=()) -> str:
    low, high = interval(fit, "alpha")
    text = f"{label}: alpha {fit.alpha:.3f} [{low:.3f}, {high:.3f}]"
    if not band_is_drawn(flags):
        short = {"E at its bound 0": "E at bound", "alpha at its bound 0": "alpha at bound",
                 "bootstrap predictions run away": "refits run away"}
        text += " (no band: " + ", ".join(short[f] for f in flags if f in short) + ")"
    return text


def plot_bpb_vs_compute(ax: Axes, df: pd.DataFrame, laws: ComputeLaws) -> Axes:
    """val BPB of the main-grid runs against compute, one colour per value path, with each
    path's fitted L(C) and the 95% band of its bootstrap refits; a law that `law_flags` marks
    (E or alpha at a bound, runaway refits) gets no band and says so in the legend. Seeds 1-2
    as small dots. The y axis spans the points, not the bands."""
    runs = main_rows(df)
    if runs.empty:
        return note(ax, "no runs yet")
    labels = variant_order(runs["path_label"])
    colors = label_colors(labels)
    repeats = main_rows(df, all_seeds=True).query("seed != 0")
    for label in labels:
        points = runs[runs["path_label"] == label]
        fit = laws.fits.get(label)
        flags = laws.flags.get(label, ())
        ax.scatter(points[laws.compute], points["val_bpb"], s=18, color=colors[label],
                   label=_law_label(label, fit, flags) if fit else f"{label} (no fit)",
                   zorder=3)
        again = repeats[repeats["path_label"] == label]
        ax.scatter(again[laws.compute], again["val_bpb"], s=6, color=colors[label], alpha=0.7,
                   zorder=3)
        if fit:
            x = law_grid(points[laws.compute])
            ax.plot(x, fit.predict(x), color=colors[label], lw=1)
            if band_is_drawn(flags):
                ax.fill_between(x, *prediction_band(fit, x), color=colors[label], alpha=0.12,
                                lw=0)
    _log_x(ax, runs[laws.compute], xlabel="training FLOPs", ylabel="val BPB")
    limit_to(ax, main_rows(df, all_seeds=True)["val_bpb"])
    ax.legend(fontsize="xx-small", title="L(C) = E + A C^-alpha, 95% bootstrap band\n"
              "large dots: seed 0 (fitted); small: seeds 1-2", title_fontsize="xx-small",
              loc="lower left")
    return ax


def plot_gap_to_standard(ax: Axes, df: pd.DataFrame, laws: ComputeLaws) -> Axes:
    """Each main-grid run's BPB minus the standard law's prediction at its compute, and the
    seed repeats as small dots; the standard law's band only when it is drawn on the left."""
    reference = laws.fits.get("standard")
    if reference is None:
        return note(ax, "no standard L(C) fit yet: the gap to it needs one")
    runs = main_rows(df)
    labels = variant_order(runs["path_label"])
    colors = label_colors(labels)
    repeats = main_rows(df, all_seeds=True).query("seed != 0")
    gaps = []
    for label in labels:
        points = runs[runs["path_label"] == label].sort_values(laws.compute)
        gap = points["val_bpb"] - reference.predict(points[laws.compute])
        ax.plot(points[laws.compute], gap, "o-", ms=4, lw=1, color=colors[label])
        again = repeats[repeats["path_label"] == label]
        extra = again["val_bpb"] - reference.predict(again[laws.compute])
        ax.scatter(again[laws.compute], extra, s=6, color=colors[label], alpha=0.7, zorder=3)
        gaps += [*gap, *extra]
    if band_is_drawn(laws.flags.get("standard", ())):
        x = law_grid(runs[laws.compute])
        low, high = prediction_band(reference, x)
        ax.fill_between(x, low - reference.predict(x), high - reference.predict(x),
                        color="0.5", alpha=0.15, lw=0, label="standard fit, 95% band")
        ax.legend(fontsize="x-small")
    ax.axhline(0, color="0.2", lw=0.8)
    _log_x(ax, runs[laws.compute], xlabel="training FLOPs", ylabel="val BPB - standard L(C)",
           title="gap to the standard law (colours as on the left)")
    limit_to(ax, gaps + [0.0])
    return ax


def plot_bpb_vs_slots(ax: Axes, df: pd.DataFrame, depth: int, pooled_std: float,
                      metric: str = "val_bpb") -> Axes:
    """MoVE `metric` (val BPB) against slots M at one depth: seed means with +-1 seed std bars
    where a slot count has seeds (filled), single seeds hollow; the standard model's mean as a
    dashed line inside a band of +-1 seed std (its own seeds, else `pooled_std`, hatched), and
    LaVE x1/x2 and standard +g0 as dotted lines. The legend is the figure's
    (`fig_memory_decoupling`, `fig_decoupling`)."""
    runs = main_rows(df, all_seeds=True).query("depth == @depth")
    move = runs[runs["value_path"] == "move"]
    if move.empty:
        return note(ax, f"d{depth}: no MoVE runs yet")
    colors = label_colors(variant_order(runs["path_label"]))
    cells = move.groupby("slots").agg(label=("path_label", "first"), mean=(metric, "mean"), std=(metric, "std"),
                                      n=(metric, "size"))
    ax.plot(cells.index, cells["mean"], color="0.5", lw=1, zorder=2)
    for slots, cell in cells.iterrows():
        color = colors[cell["label"]]
        if cell["n"] > 1:
            ax.errorbar(slots, cell["mean"], yerr=cell["std"], fmt="o", ms=5, color=color,
                        capsize=2, lw=1, zorder=3)
        else:
            ax.scatter(slots, cell["mean"], s=30, zorder=3, **hollow(color))
    drawn = list(cells["mean"] + cells["std"].fillna(0)) + list(cells["mean"] -
                                                                 cells["std"].fillna(0))
    standard = runs.loc[runs["path_label"] == "standard", metric]
    if len(standard):
        own = len(standard) > 1
        spread = standard.std() if own else pooled_std
        ax.axhline(standard.mean(), color=colors["standard"], lw=1, ls="--")
        if np.isfinite(spread):
            ax.axhspan(standard.mean() - spread, standard.mean() + spread, color="0.5",
                       alpha=0.15 if own else 0.08, hatch=None if own else "///", lw=0)
            drawn += [standard.mean() - spread, standard.mean() + spread]
    for label in ("LaVE x1", "LaVE x2", "standard +g0"):
        bpb = runs.loc[runs["path_label"] == label, metric]
        if len(bpb):
            ax.axhline(bpb.mean(), color=colors[label], lw=1, ls=":")
            drawn.append(bpb.mean())
    slot_ticks(ax, cells.index)
    seeds, fewest, most = runs["seed"].nunique(), int(cells["n"].min()), int(cells["n"].max())
    title = f"depth {depth} ({seeds} seed{'s' if seeds > 1 else ''})"
    if fewest < seeds:  # the depth's seeds are not every MoVE cell's: say what the cells have
        per_cell = f"{fewest}" if fewest == most else f"{fewest}-{most}"
        title = (f"depth {depth} (MoVE {per_cell} seed{'s' if most > 1 else ''} a slot count, "
                 f"{seeds} in all)")
    ax.set(xlabel="MoVE slots M", ylabel=METRIC_LABELS.get(metric, metric), title=title)
    limit_to(ax, drawn)
    return ax


def plot_slot_gains(ax: Axes, gains: pd.DataFrame, pooled: dict | None = None) -> Axes:
    """BPB removed per doubling of slots at each depth (seed-paired where there are seeds), with
    its t interval, and the estimate `pooled` over depths (depth fixed effects) at the right."""
    rated = gains.dropna(subset=["gain_per_doubling"])
    if rated.empty:
        return note(ax, "no depth has MoVE runs at two slot counts yet")
    ticks, names = list(rated["depth"]), [f"d{d}" for d in rated["depth"]]
    for row in rated.itertuples():
        draw_interval(ax, row.depth, row.gain_per_doubling, row.low, row.high, vertical=True,
                      color="C3", marker="o" if row.n_seeds > 1 else "s")
    if pooled is not None and np.isfinite(pooled["gain_per_doubling"]):
        at = rated["depth"].max() + 2
        draw_interval(ax, at, pooled["gain_per_doubling"], pooled["low"], pooled["high"],
                      vertical=True, color="0.1", marker="D")
        ticks.append(at)
        names.append(f"pooled\nd{pooled['depths'].replace('-', '-d')}")
    ax.axhline(0, color="0.2", lw=0.8)
    ax.set_xticks(ticks, names)
    ax.set(xlabel="depth", ylabel="BPB gained per doubling of M",
           title="slope on log2 M, 95% t interval\n(circles: 3 seeds, paired; squares: 1 seed)")
    return ax


ARM_STYLES = {"paper": ("C3", "o", -0.06), "symbreak": ("C0", "s", 0.06)}  # colour, marker, x offset


def plot_gain_over_baseline(ax: Axes, table: pd.DataFrame, depth: int, *,
                            baseline: str = "standard +g0", metric: str = "val_bpb") -> Axes:
    """The paired gain metric(baseline) - metric(MoVE) against slots M at one depth, one line
    per recipe arm (`verdict.slot_gain_table`): the mean over seeds with its 95% t interval and
    each seed's own gain as a small dot; above 0 the memory model is better."""
    rows = table[table["depth"] == depth]
    if rows.empty:
        return note(ax, f"d{depth}: no MoVE runs paired with {baseline} yet")
    drawn = [0.0]
    for arm, cells in rows.groupby("arm", sort=False):
        color, marker, offset = ARM_STYLES.get(arm, ("0.3", "^", 0.0))
        cells = cells.sort_values("slots")
        at = cells["slots"] * 2 ** offset
        ax.plot(at, cells["gain"], color=color, lw=1, alpha=0.7)
        for x, cell in zip(at, cells.itertuples()):
            if np.isfinite(cell.low):
                draw_interval(ax, x, cell.gain, cell.low, cell.high, vertical=True, color=color,
                              marker=marker)
                drawn += [cell.low, cell.high]
            else:
                ax.scatter(x, cell.gain, s=26, zorder=4, marker=marker, **hollow(color))
            ax.scatter([x] * len(cell.per_seed), list(cell.per_seed.values()), s=7, color=color,
                       alpha=0.45, zorder=3, lw=0)
            drawn += list(cell.per_seed.values()) + [cell.gain]
        ax.plot([], [], color=color, marker=marker, lw=1,
                label=f"{arm} (n {cells['n'].max()})")
    ax.axhline(0, color="0.2", lw=0.8)
    slot_ticks(ax, rows["slots"])
    name = METRIC_LABELS.get(metric, metric).split(" (")[0]
    ax.set(xlabel="MoVE slots M", ylabel=f"{baseline} minus MoVE,\n{name} (paired by seed)",
           title=f"depth {depth}: gain over {baseline}\nmean, 95% t interval; dots: seeds")
    ax.title.set_fontsize("small")
    limit_to(ax, drawn)
    ax.legend(fontsize="xx-small", title="recipe", title_fontsize="xx-small")
    return ax


def plot_verdict(ax: Axes, verdicts: dict[str, pd.DataFrame]) -> Axes:
    """The pre-registered criteria as a table of text, one block per recipe arm
    (`verdict.decoupling_verdict`): each criterion's estimate, interval and whether it holds
    (yes / no / n.a. where the rows cannot tell)."""
    ax.set_axis_off()
    lines, extrapolated = [], False
    for arm, table in verdicts.items():
        held = sum(holds is True for holds in table["holds"])
        lines.append(f"{arm}: {held} of {len(table)} criteria hold")
        for row in table.itertuples():
            mark = {True: "yes", False: "NO"}.get(row.holds, "n.a.")
            if "extrapolated" in row.detail:
                mark, extrapolated = mark + "*", True
            bounds = (f" [{row.low:+.3f}, {row.high:+.3f}]" if np.isfinite(row.low) else "")
            estimate = f"{row.estimate:+.4f}" if np.isfinite(row.estimate) else "  --  "
            lines.append(f"  {row.criterion:<14s}{mark:>5s}  {estimate}{bounds}")
        lines.append("")
    if extrapolated:
        lines.append("* the dense equivalent lies beyond the\n  dense runs' sizes (an extrapolation)")
    ax.text(0.0, 1.0, "\n".join(lines).rstrip(), ha="left", va="top", family="monospace",
            fontsize="x-small", transform=ax.transAxes)
    ax.set_title("pre-registered criteria (PLAN.md): all four needed", fontsize="small",
                 loc="left")
    return ax


def plot_slot_gains_over_training(ax: Axes, over_training: pd.DataFrame) -> Axes:
    """The gain per doubling of slots at each evaluation along training (x: fraction of the
    run's tokens), a line per depth and the pooled estimate with its 95% band."""
    if over_training.dropna(subset=["gain_per_doubling"]).empty:
        return note(ax, "no curves with two slot counts yet")
    depths = over_training.dropna(subset=["depth"])
    palette = dict(zip(sorted(depths["depth"].unique()),
                       sns.color_palette("crest", depths["depth"].nunique())))
    for depth, rows in depths.groupby("depth"):
        ax.plot(rows["fraction"], rows["gain_per_doubling"], "o-", ms=3, lw=1,
                color=palette[depth], label=f"d{depth:g}")
    pooled = over_training[over_training["depth"].isna()]
    if len(pooled):
        ax.fill_between(pooled["fraction"], pooled["low"], pooled["high"], color="0.1",
                        alpha=0.12, lw=0)
        ax.plot(pooled["fraction"], pooled["gain_per_doubling"], "D-", ms=4, lw=1.5,
                color="0.1", label=pooled["scope"].iloc[0] + " (95% band)")
    ax.axhline(0, color="0.2", lw=0.8)
    ax.set(xlabel="fraction of training tokens seen", ylabel="BPB gained per doubling of M",
           title="the same slope along training")
    ax.legend(fontsize="xx-small", ncol=2)
    return ax


def plot_val_over_epochs(ax: Axes, curves: pd.DataFrame, depth: int) -> Axes:
    """val BPB against epochs seen at each evaluation of the seed-0 runs at `depth` in `curves`
    (pass the main-grid runs' curves), one line per value path, its best evaluation ringed."""
    runs = curves[(curves["depth"] == depth) & (curves["seed"] == 0)]
    if runs.empty:
        return note(ax, f"d{depth}: no curves yet")
    labels = variant_order(runs["path_label"])
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
    colors = label_colors(variant_order(repetition["path_label"]))
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
    order = variant_order(table["path_label"])
    palette = sns.color_palette("crest", table["preset"].nunique())
    for color, (preset, rows) in zip(palette, table.groupby("preset", sort=False)):
        values = rows.set_index("path_label")[column].reindex(order).replace(0, np.nan)
        ax.plot(range(len(order)), values.to_numpy(), marker="o", ls=linestyle, ms=3, lw=1,
                color=color, label=preset if linestyle == "-" else None)
    ax.set_xticks(range(len(order)), order, rotation=60, ha="right")
    ax.set_yscale("log")
    return ax


def plot_dense_law(ax: Axes, df: pd.DataFrame, exchange: ExchangeRate, flags=(),
                   metric: str = "val_bpb") -> Axes:
    """Standard runs' `metric` (seed means) against active parameters with the fitted dense law
    (its band unless `flags` say it is not identified) and the law without the deepest depth
    (dotted); the LaVE/MoVE seed means at their own active parameters, for the vertical gap."""
    table = exchange.table
    runs = main_rows(df, all_seeds=True)
    if runs.empty:
        return note(ax, "no runs yet")
    labels = variant_order(runs["path_label"])
    colors = label_colors(labels)
    standard = runs[runs["path_label"] == "standard"].groupby("depth").agg(
        bpb=(metric, "mean"), x=("params_active", "first"))
    ax.scatter(standard["x"], standard["bpb"], s=22, color=colors["standard"], zorder=4,
               label="standard (seed mean)")
    for label in labels[1:]:
        rows = table[table["path_label"] == label]
        ax.scatter(rows["params_active"], rows[metric], s=9, color=colors[label], zorder=3,
                   label=label)
    described = []
    for law, style_, name in ((exchange.params_law, "-", "solid"),
                              (exchange.params_law_lodo, ":", "dotted, without deepest")):
        if law is not None:
            x = law_grid(standard["x"])
            ax.plot(x, law.predict(x), color="0.1", lw=1, ls=style_)
            described.append(_law_label(name, law, flags if style_ == "-" else ()))
            if style_ == "-" and band_is_drawn(flags):
                ax.fill_between(x, *prediction_band(law, x), color="0.5", alpha=0.15, lw=0)
    _log_x(ax, runs["params_active"], xlabel="active parameters N (matmul weights)",
           ylabel=METRIC_LABELS.get(metric, metric),
           title="dense law L(N) = E + A N^-alpha\n" + "\n".join(described)
           if exchange.params_law else "too few standard runs to fit")
    ax.title.set_fontsize("small")
    limit_to(ax, list(standard["bpb"]) + list(table[metric]))
    ax.legend(fontsize="xx-small", ncol=2, loc="upper right")
    return ax


_RATIO_TICKS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
_WIDE_RATIO_TICKS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def plot_exchange_gains(ax: Axes, exchange: ExchangeRate, quantity: str = "params") -> Axes:
    """Dense equivalent / own `quantity` (params: active parameters; compute: training FLOPs)
    per depth and label on a log axis labelled as % gain, with its 95% interval (law refits and
    the model's seed noise); diamonds: seed means, circles: single seeds (hollow: extrapolated
    beyond the standard runs); x: the point without the deepest standard depth."""
    table = exchange.table.dropna(subset=[f"{quantity}_gain"])
    table = table[np.isfinite(table[f"{quantity}_gain"])]
    if table.empty:
        return note(ax, "\n".join(exchange.notes[:-1]) or "no LaVE/MoVE runs to rate yet")
    labels = variant_order(table["path_label"])
    colors = label_colors(labels)
    offsets = dict(zip(labels, np.linspace(-0.7, 0.7, len(labels))))
    drawn = [1.0]
    for label in labels:
        rows = table[table["path_label"] == label]
        ax.plot([], [], color=colors[label], lw=3, label=label)
        for row in rows.itertuples():
            at, color = row.depth + offsets[label], colors[label]
            gain, low, high, lodo = (1 + getattr(row, f"{quantity}_gain{end}") for end in
                                     ("", "_low", "_high", "_lodo"))
            high = min(high, 1e3)  # an equivalent at the law's floor is infinite
            ax.plot([at, at], [max(low, 1e-3), high], color=color, lw=1)
            style_ = {"marker": "D" if row.n_seeds > 1 else "o", "s": 20, "zorder": 4}
            ax.scatter(at, gain, **(hollow(color) if row.extrapolated else {"color": color}),
                       **style_)
            ax.scatter(at, lodo, marker="x", s=14, color=color, lw=0.8, zorder=4)
            drawn += [gain, low, high, lodo]
    ax.axhline(1, color="0.2", lw=0.8)
    ax.set_yscale("log")
    limit_to(ax, [d for d in drawn if np.isfinite(d) and d > 0], margin=0.04)
    ticks = _RATIO_TICKS if np.ptp(np.log(ax.get_ylim())) < np.log(8) else _WIDE_RATIO_TICKS
    ax.yaxis.set_major_locator(mpl.ticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda r, _: f"{100 * (r - 1):+.0f}%"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    what = "active params" if quantity == "params" else "training compute"
    ax.set(xlabel="depth", ylabel=f"dense-equivalent {what}, gain over own",
           xticks=sorted(table["depth"].unique()), title=f"in {what}")
    for marker, extra, name in (("D", {"color": "0.4"}, "seed mean (3 seeds)"),
                                ("o", {"color": "0.4"}, "one seed"),
                                ("o", hollow("0.4"), "extrapolated"),
                                ("x", {"color": "0.4"}, "law without deepest depth")):
        ax.scatter([], [], marker=marker, s=20, label=name, **extra)
    ax.legend(fontsize="xx-small", ncol=3, loc="lower left")
    return ax


def plot_heldout(ax: Axes, selection: JointLawSelection) -> Axes:
    """Held-out runs' BPB against log(1 + M), observed and as each joint form predicts it, with
    the held-out RMSE of a law with no memory term for scale."""
    if not selection.scores:
        return note(ax, "joint law not compared: " + "; ".join(selection.notes))
    first = selection.predictions[selection.predictions["form"] == selection.scores[0].form]
    ax.scatter(np.log1p(first["slots"]), first["observed"], color="0.1", s=20, zorder=3,
               label="observed (1 seed)")
    for i, score in enumerate(selection.scores):
        rows = selection.predictions[selection.predictions["form"] == score.form]
        ax.plot(np.log1p(rows["slots"]), rows["predicted"], "o--", ms=3, lw=1, color=f"C{i}",
                label=f"{score.form}: RMSE {score.rmse:.4f}")
    ax.plot([], [], ls="", label=f"no memory term, L(N): RMSE {selection.memory_free_rmse:.4f}")
    fitted = f"d{selection.heldout_depth} held out, fitted on shallower depths"
    ax.set(xlabel="log(1 + M)  (M = 0: standard)", ylabel="val BPB", title=fitted)
    limit_to(ax, list(selection.predictions["observed"])
             + list(selection.predictions["predicted"]))
    ax.legend(fontsize="x-small")
    return ax


def plot_variant_summary(ax: Axes, runs: pd.DataFrame) -> Axes:
    """val BPB per path label (one row each): every seed a dot; with several seeds, the mean
    and its 95% t interval (diamond); a label with a single run a hollow circle named "(1 seed)".
    A dashed line marks the standard model's mean."""
    if runs.empty:
        return note(ax, "no runs at this depth yet")
    labels = variant_order(runs["path_label"])
    colors = label_colors(labels)
    noise = seed_summary(runs).set_index("path_label")
    names = []
    for y, label in enumerate(labels):
        bpb = runs.loc[runs["path_label"] == label, "val_bpb"]
        if label in noise.index:
            ax.scatter(bpb, np.full(len(bpb), y), s=14, color=colors[label], alpha=0.6,
                       zorder=3)
            row = noise.loc[label]
            draw_interval(ax, y, row["mean"], row["low"], row["high"], color=colors[label],
                          marker="D")
            names.append(f"{label} ({len(bpb)} seeds)")
        else:
            ax.scatter(bpb, np.full(len(bpb), y), s=30, zorder=3, **hollow(colors[label]))
            names.append(f"{label} (1 seed)")
    if "standard" in labels:
        ax.axvline(runs.loc[runs["path_label"] == "standard", "val_bpb"].mean(), color="0.2",
                   lw=0.8, ls="--")
    ax.set_yticks(range(len(labels)), names)
    ax.invert_yaxis()
    ax.set(xlabel="val BPB (dots: seeds; diamonds: mean, 95% t interval;\nhollow: one seed)")
    return ax


def _draw_differences(ax: Axes, tested: pd.DataFrame) -> list:
    """One row per tested difference (top down from y = 0): its 95% interval, coloured by its
    label, over a grey bar of +-the smallest difference detectable at 80% power; 0 marked.
    Returns the rows in drawing order, for the caller's tick labels."""
    colors = label_colors(variant_order(tested["path_label"]))
    rows = list(tested.itertuples())
    for y, row in enumerate(rows):
        ax.plot([-row.detectable, row.detectable], [y, y], color="0.8", lw=6,
                solid_capstyle="butt", zorder=1)
        draw_interval(ax, y, row.difference, row.low, row.high, color=colors[row.path_label])
    ax.axvline(0, color="0.2", lw=0.8)
    return rows


def plot_seed_differences(ax: Axes, comparison: pd.DataFrame) -> Axes:
    """Mean BPB difference to the reference per depth and label (`compare_to_standard`): the
    95% t interval (paired by seed where the arms share seeds), raw and Holm-adjusted p, and in
    grey the smallest difference detectable at 80% power, on either side of zero."""
    tested = comparison.dropna(subset=["low"])
    if tested.empty:
        return note(ax, "no depth has 2+ seeds of standard and a variant yet")
    rows = _draw_differences(ax, tested)
    ax.set_yticks(range(len(rows)), [f"d{r.depth} {r.path_label} ({r.test}, n={r.n})\n"
                                     f"p={r.p:.2g}, Holm {r.p_holm:.2g}" for r in rows])
    ax.invert_yaxis()
    ax.set(xlabel="val BPB minus standard, 95% interval\n(grey: +-smallest detectable, "
                  "80% power)")
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




def plot_metric_vs_compute(ax: Axes, df: pd.DataFrame, column: str,
                           ylabel: str | None = None) -> Axes:
    """An image metric of the main-grid runs (seed 0) against training FLOPs, a line per value
    path; the seed repeats as small dots at their depth."""
    runs = df.dropna(subset=[column])
    grid = main_rows(runs)
    if grid.empty:
        return note(ax, f"no runs with {column} yet")
    labels = variant_order(runs["path_label"])
    colors = label_colors(labels)
    for label in labels:
        points = grid[grid["path_label"] == label].sort_values("train_flops")
        ax.plot(points["train_flops"], points[column], "o-", ms=4, lw=1, color=colors[label],
                label=label)
        repeats = runs[(runs["path_label"] == label) & (runs["role"] == "seed")
                       & (runs["seed"] != 0)]
        ax.scatter(repeats["train_flops"], repeats[column], s=9, color=colors[label], alpha=0.6)
    _log_x(ax, runs["train_flops"], xlabel="training FLOPs",
           ylabel=ylabel or METRIC_LABELS.get(column, column))
    ax.legend(fontsize="x-small", title="lines: seed 0; small dots: seeds 1-2",
              title_fontsize="xx-small")
    return ax


def plot_metric_vs_slots(ax: Axes, df: pd.DataFrame, column: str,
                         ylabel: str | None = None) -> Axes:
    """An image metric of MoVE runs minus the standard run's at the same depth, against slots
    M, a line per depth (seed means: filled with +-1 seed std bars; single seeds hollow), and the
    standard's own seed spread as a band where it has seeds. Differences, not levels, so the
    shallowest depth does not set the scale of the others."""
    runs = main_rows(df.dropna(subset=[column]), all_seeds=True)
    move = runs[runs["value_path"] == "move"]
    if move.empty:
        return note(ax, f"no MoVE runs with {column} yet")
    depths = sorted(move["depth"].unique())
    palette = dict(zip(depths, sns.color_palette("crest", len(depths))))
    drawn = [0.0]
    for depth in depths:
        standard = runs[(runs["depth"] == depth) & (runs["path_label"] == "standard")][column]
        if standard.empty:
            continue
        cells = move[move["depth"] == depth].groupby("slots")[column].agg(["mean", "std",
                                                                            "size"])
        difference = cells["mean"] - standard.mean()
        ax.plot(cells.index, difference, "-", lw=1, color=palette[depth], label=f"d{depth}")
        for slots, cell in cells.iterrows():
            if cell["size"] > 1:
                ax.errorbar(slots, difference[slots], yerr=cell["std"], fmt="o", ms=4,
                            capsize=2, lw=1, color=palette[depth], zorder=3)
            else:
                ax.scatter(slots, difference[slots], s=18, zorder=3, **hollow(palette[depth]))
        drawn += list(difference + cells["std"].fillna(0)) + list(difference -
                                                                   cells["std"].fillna(0))
        if len(standard) > 1:
            ax.axhspan(-standard.std(), standard.std(), color=palette[depth], alpha=0.15, lw=0,
                       label=f"d{depth} standard, +-1 seed std")
    ax.axhline(0, color="0.2", lw=0.8)
    ax.set_xscale("log", base=2)
    name = ylabel or METRIC_LABELS.get(column, column)
    ax.set(xlabel="MoVE slots M", ylabel=f"{name.split(' (')[0]}\nminus standard, same depth",
           title="MoVE by slots (hollow: one seed)")
    limit_to(ax, drawn)
    ax.legend(fontsize="xx-small", ncol=2)
    return ax


def plot_frequency_differences(ax: Axes, table: pd.DataFrame, depth: int,
                               reference: str = "standard") -> Axes:
    """Each label's val BPB minus the reference's per frequency bucket of the input token at
    one depth (`secondary.frequency_differences`): the mean over seeds with its 95% t interval
    (paired by seed, joined by a line); a label with one seed shared with the reference as
    hollow markers only, unjoined (a lead: no interval, its shape within seed noise)."""
    rows = table[(table["depth"] == depth) & table["difference"].notna()]
    if rows.empty:
        return note(ax, f"d{depth}: no run with BPB by frequency beside a standard run yet")
    labels = variant_order(rows["path_label"])
    colors = label_colors(labels)
    drawn = [0.0]
    for k, label in enumerate(labels):
        cells = rows[rows["path_label"] == label].sort_values("bucket")
        at = cells["bucket"] + 0.12 * (k - (len(labels) - 1) / 2)
        if cells["low"].notna().any():
            ax.plot(at, cells["difference"], color=colors[label], lw=1, alpha=0.6,
                    label=f"{label} (n {cells['n'].iloc[0]})")
        else:
            ax.scatter([], [], s=24, **hollow(colors[label]), label=f"{label} (1 seed: a lead)")
        for x, cell in zip(at, cells.itertuples()):
            if np.isfinite(cell.low):
                draw_interval(ax, x, cell.difference, cell.low, cell.high, vertical=True,
                              color=colors[label])
                drawn += [cell.low, cell.high]
            else:  # one shared seed: its difference, no interval
                ax.scatter(x, cell.difference, s=24, zorder=4, **hollow(colors[label]))
            drawn.append(cell.difference)
    ax.axhline(0, color="0.2", lw=0.8)
    spans = rows.drop_duplicates("bucket").sort_values("bucket")
    ax.set_xticks(spans["bucket"], [f"{b}\n{lo:,.0f}-\n{hi:,.0f}" for b, lo, hi in
                                    zip(spans["bucket"], spans["occurrences_min"],
                                        spans["occurrences_max"])], fontsize="x-small")
    ax.set(xlabel="input token's training occurrences\n(5 equal shares of positions; 1: rarest)",
           ylabel=f"val BPB minus {reference}",
           title=f"depth {depth}: whom does the memory help?\nbelow 0: better; paired by "
                 "seed, 95% t; hollow: one seed")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2)
    limit_to(ax, drawn)
    return ax


def plot_diagnostic_over_training(ax: Axes, table: pd.DataFrame, depth: int,
                                  column: str = "slot_effective_count") -> Axes:
    """A slot diagnostic (`secondary.diagnostics_over_training`) against the fraction of
    training at one depth, one line per MoVE label (seed mean, band +-1 seed std where 2+
    seeds); recipe arms other than the paper's dashed."""
    rows = table[(table["depth"] == depth) & table["path_label"].str.startswith("MoVE")]
    if rows.empty or column not in rows or rows[column].isna().all():
        return note(ax, f"d{depth}: no MoVE run recorded {column} yet")
    colors = label_colors(variant_order(rows["path_label"]))
    for label in variant_order(rows["path_label"]):
        cells = rows[rows["path_label"] == label].sort_values("fraction")
        other_recipe = len(label.split()) > 2  # "MoVE x4 symbreak": not the paper's recipe
        ax.plot(cells["fraction"], cells[column], color=colors[label], lw=1.2, marker="o", ms=2.5,
                ls="--" if other_recipe else "-",
                label=f"{label} (M {cells['slots'].iloc[0]}, n {cells['n_seeds'].max()})")
        spread = cells[f"{column}_std"]
        if spread.notna().any():
            ax.fill_between(cells["fraction"], cells[column] - spread, cells[column] + spread,
                            color=colors[label], alpha=0.12, lw=0)
    ax.set(xlabel="fraction of training", ylabel=column.replace("_", " "),
           title=f"depth {depth}: {column.replace('_', ' ')} along training\n"
                 "(1: a token's slots move as one)")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="x-small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return ax


def plot_matched_comparisons(ax: Axes, table: pd.DataFrame, metric: str = "val_bpb") -> Axes:
    """Each tested row of `secondary.matched_comparisons`: the paired difference to its
    matched reference with its 95% interval, labelled with what is matched and the cost
    ratios; grey: +-the smallest difference detectable at 80% power."""
    tested = table.dropna(subset=["low"])
    if tested.empty:
        return note(ax, "no pair of test-split rows shares 2+ seeds yet")
    rows = _draw_differences(ax, tested)
    ax.set_yticks(range(len(rows)), [
        f"d{r.depth} {r.path_label} vs {r.reference} (n {r.n})\n"
        f"{r.matched or 'nothing'} matched: FLOPs {r.flops_ratio:.2f}x, total {r.total_ratio:.2f}x;"
        f" Holm p {r.p_holm:.2g} (of {r.holm_m} at d{r.depth})" for r in rows], fontsize="x-small")
    ax.invert_yaxis()
    ax.set(xlabel=f"{METRIC_LABELS.get(metric, metric).split(' (')[0]} minus the reference\n"
                  "95% t interval (unadjusted)\ngrey: +-smallest detectable (80% power)",
           title="matched comparisons (test split)")
    ax.title.set_fontsize("small")
    return ax


def plot_vocabulary_gains(ax: Axes, gains: pd.DataFrame, cells: pd.DataFrame,
                          slope: dict, metric: str = "val_bpb") -> Axes:
    """MoVE's paired gain over standard against the mean occurrences per bank row
    (tokens_seen / V, log2 axis), per MoVE size (`vocabulary.vocabulary_gains` and
    `vocabulary_cells`; the sizes side by side at each V): each seed's gain as a small dot, the
    cell's mean with its unadjusted 95% t interval, and H2's slope (`occurrence_slope`) through
    each size's mean. The axis spans the gains; an interval that runs past it (two seeds give
    one degree of freedom, t = 12.7) ends in an arrow at the edge."""
    if gains.empty:
        return note(ax, "no vocabulary has a standard and a MoVE run of one seed yet")
    labels = variant_order(gains["path_label"])
    colors = label_colors(labels)
    drawn, intervals = [0.0], []
    for i, label in enumerate(labels):
        rows = gains[gains["path_label"] == label]
        dodge = 2 ** (0.05 * (i - (len(labels) - 1) / 2))  # side by side on the log2 axis
        ax.scatter(rows["tokens_per_id"] * dodge, rows["gain"], s=8, color=colors[label],
                   alpha=0.5, lw=0)
        drawn += list(rows["gain"])
        for cell in cells[cells["path_label"] == label].itertuples():
            where = rows.loc[rows["vocab_size"] == cell.vocab_size, "tokens_per_id"]
            if len(where) and np.isfinite(cell.low):  # (no gains at a V without its standard run)
                at = float(where.iloc[0]) * dodge
                draw_interval(ax, at, cell.gain, cell.low, cell.high, vertical=True,
                              color=colors[label])
                drawn.append(cell.gain)
                intervals.append((at, cell.low, cell.high, colors[label]))
        if np.isfinite(slope["slope"]):
            x = np.log2(rows["tokens_per_id"].to_numpy(float))
            grid = np.linspace(x.min(), x.max(), 20)
            ax.plot(2 ** grid * dodge, rows["gain"].mean() + slope["slope"] * (grid - x.mean()),
                    color=colors[label], lw=1, ls="--")
        ax.plot([], [], color=colors[label], marker="o", lw=1, ls="--", label=label)
    ax.axhline(0, color="0.2", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="mean occurrences per bank row (tokens seen / V)",
           ylabel=f"standard minus MoVE, {METRIC_LABELS.get(metric, metric).split(' (')[0]}\n"
                  "(paired by seed; above 0: MoVE better)",
           title="H2: does the gain grow with occurrences per row?\ncell mean, unadjusted 95% t "
                 "interval; dots: seeds; dashed: H2's slope")
    ax.title.set_fontsize("small")
    limit_to(ax, drawn, margin=0.25)
    bottom, top = ax.get_ylim()
    clipped = False
    for at, low, high, color in intervals:
        for end, edge, marker in ((low, bottom, "v"), (high, top, "^")):
            if (end < edge) if marker == "v" else (end > edge):
                ax.plot(at, edge, marker=marker, color=color, ms=6, clip_on=False, zorder=5)
                clipped = True
    if clipped:
        ax.plot([], [], color="0.4", marker="^", ls="", label="interval beyond the axis")
    ax.legend(fontsize="x-small")
    return ax


def plot_metric_by_vocabulary(ax: Axes, df: pd.DataFrame, metric: str = "val_bpb") -> Axes:
    """Each variant's `metric` (seed mean, +-1 seed std) against the vocabulary size V."""
    if df.empty:
        return note(ax, "no runs yet")
    colors = label_colors(variant_order(df["path_label"]))
    drawn = []
    for label in variant_order(df["path_label"]):
        cells = df[df["path_label"] == label].groupby("vocab_size")[metric].agg(["mean", "std"])
        ax.errorbar(cells.index, cells["mean"], yerr=cells["std"].fillna(0), color=colors[label],
                    marker="o", ms=4, lw=1, capsize=2, label=label)
        drawn += list(cells["mean"] + cells["std"].fillna(0)) + list(cells["mean"] - cells["std"].fillna(0))
    ax.set_xscale("log", base=2)
    ax.set(xlabel="vocabulary size V", ylabel=METRIC_LABELS.get(metric, metric),
           title="per variant: seed mean +-1 seed std")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="x-small")
    limit_to(ax, drawn)
    return ax
