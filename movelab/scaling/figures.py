"""The figures of a sweep, one function each (`fig_<name>(...) -> Figure`), and
`write_all_figures`, which writes every one as PNG and SVG, byte-identical on a rerun (fixed
bootstrap seeds, SVG hash salt, no dates or software versions in the files).

    movelab figures [--out DIR] [--results-dir DIR]     (make figures)
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from movelab.accounting import ladder_records
from movelab.scaling import plot
from movelab.scaling.analysis import (accounting_table, chinchilla_reproduction,
                                      compare_to_standard, depths_within_epochs, exchange_rate,
                                      fit_compute_laws,
                                      law_flags, main_rows, pooled_seed_std, pooled_slot_gain,
                                      repetition_table, select_joint_law, slot_doubling_gains,
                                      slot_gains_over_training, synthetic_recovery)
from movelab.scaling.load import (find_reference_dir, find_results_dir, load_curves, load_runs,
                                  runs_csv_path)
from movelab.scaling.secondary import (diagnostics_over_training, frequency_bpb_on_test,
                                       frequency_differences, matched_comparisons)
from movelab.scaling.verdict import (PAPER, arm_rows, claimed, decoupling_verdict, plan_metric,
                                    slot_gain_table)
from movelab.scaling.vocabulary import occurrence_slope, vocabulary_cells, vocabulary_gains
from movelab.variant import variant_order

BOOTSTRAP = 200
MIN_FIT_DEPTHS = 3  # select_joint_law's default: depths to fit on below a held-out one
# 3^5 = 243 starts; on the Chinchilla points they reach the optimum of Epoch's 4500 (same
# parameters to 4 digits) in a second instead of half a minute.
QUICK_START_GRID = {"a": (0.0, 10.0, 20.0), "b": (0.0, 10.0, 20.0), "e": (-1.0, 0.0, 1.0),
                    "alpha": (0.0, 1.0, 2.0), "beta": (0.0, 1.0, 2.0)}
SAVE_OPTIONS = {"png": {"dpi": 150, "metadata": {"Software": None}},
                "svg": {"metadata": {"Date": None, "Creator": None}}}


def _styled(make_figure):
    @functools.wraps(make_figure)
    def wrapper(*args, **kwargs) -> Figure:
        with plot.style():
            return make_figure(*args, **kwargs)
    return wrapper


def _panels(ncols: int, nrows: int = 1, width: float = 4.2, height: float = 3.6):
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())


@_styled
def fig_accounting(records: list[dict] | None = None) -> Figure:
    """(a) Parameters and train FLOPs per token of every CPU-ladder preset and value path:
    memory grows with the slots, FLOPs barely move."""
    table = accounting_table(ladder_records(["cpu"]) if records is None else records)
    fig, axes = _panels(3)
    plot.plot_accounting(axes[0], table, "params_total")
    plot.plot_accounting(axes[0], table, "params_active", linestyle="--")
    axes[0].set_title("total parameters (solid), active (dashed)")
    axes[0].legend(fontsize="x-small", ncol=2)
    plot.plot_accounting(axes[1], table, "params_memory")
    axes[1].set_title("memory: LaVE tables + MoVE bank (lookups)")
    plot.plot_accounting(axes[2], table, "flops_per_token_train")
    axes[2].set_title("train FLOPs per token")
    fig.suptitle(f"Parameters and FLOPs per token on the CPU ladder: up to "
                 f"{table['params_total_vs_standard'].max():.0f}x the standard model's parameters "
                 f"for at most {table['flops_per_token_train_vs_standard'].max():.2f}x its FLOPs "
                 f"per token\nFLOPs: {plot.FLOPS_CONVENTION} (MoVE's slot mix is not in it)")
    return fig


@_styled
def fig_text_scaling(df, *, bootstrap: int = BOOTSTRAP) -> Figure:
    """(b) val BPB against training FLOPs per value path, with L(C) fits and, where the fit is
    identified, their bands."""
    laws = fit_compute_laws(df, bootstrap=bootstrap)
    fig, axes = _panels(2, width=5.5, height=4.4)
    plot.plot_bpb_vs_compute(axes[0], df, laws)
    plot.plot_gap_to_standard(axes[1], df, laws)
    fig.suptitle(f"Text scaling: how does val BPB fall with training compute, per value path? "
                 f"{len(main_rows(df))} main-grid runs\ntraining FLOPs: "
                 f"{plot.FLOPS_CONVENTION}")
    return fig


@_styled
def fig_memory_decoupling(df, curves=None, *, pooled_depths=None) -> Figure:
    """(c) val BPB against MoVE slots at each depth (seed means and spread, standard and LaVE
    as reference lines), the BPB gained per doubling of slots per depth and pooled over
    `pooled_depths` (all if None), and, from `curves` (the MoVE runs' curve.csv, all seeds),
    the same slope along training."""
    move = main_rows(df).query("value_path == 'move'")
    depths = sorted(move["depth"].unique())
    panels = len(depths) + 1 + (curves is not None)
    ncols = min(4, max(panels, 1))
    fig, axes = _panels(ncols, nrows=-(-panels // ncols), width=3.9, height=3.4)
    pooled_std = pooled_seed_std(df)
    for ax, depth in zip(axes, depths):
        plot.plot_bpb_vs_slots(ax, df, depth, pooled_std)
    gains = slot_doubling_gains(df, all_seeds=True)
    pooled = pooled_slot_gain(df, depths=pooled_depths) if depths else None
    plot.plot_slot_gains(axes[len(depths)], gains, pooled)
    if curves is not None:
        plot.plot_slot_gains_over_training(axes[len(depths) + 1], slot_gains_over_training(
            df, curves, pooled_depths=pooled_depths))
    for ax in axes[panels:]:
        ax.set_axis_off()
    if depths:
        fig.legend(handles=_slot_legend(df), loc="outside lower center", ncol=6,
                   fontsize="x-small")
    fig.suptitle("Does val BPB fall as MoVE slots grow at fixed depth? "
                 "(main rows, every seed)")
    return fig


def _slot_legend(df, dotted: str = "LaVE x1 / x2") -> list:
    """The handles shared by the panels of `plot.plot_bpb_vs_slots` (`dotted`: what its dotted
    lines are in this sweep)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colors = plot.label_colors(variant_order(df["path_label"]))
    handle = functools.partial(Line2D, [], [], lw=1)
    return [handle(color=colors["standard"], ls="--", label="standard (seed mean)"),
            Patch(color="0.5", alpha=0.3, label="standard +-1 seed std"),
            Patch(facecolor="0.5", alpha=0.15, hatch="///", label="pooled seed std (1 seed)"),
            handle(color="C0", ls=":", label=dotted),
            handle(color="0.5", marker="o", label="MoVE, mean +-1 std (3 seeds)"),
            handle(color="0.5", marker="o", markerfacecolor="white", ls="",
                   label="MoVE, one seed")]


@_styled
def fig_exchange_rate(df, *, bootstrap: int = BOOTSTRAP) -> Figure:
    """(d) What dense model each LaVE/MoVE model is worth, from the standard runs' power laws in
    active parameters and in training compute, with intervals over the laws' refits and the
    models' seed noise, and the same without the deepest standard depth."""
    exchange = exchange_rate(df, bootstrap=bootstrap)
    fig, axes = _panels(3, width=4.8, height=4.4)
    flags = ()
    if exchange.params_law is not None:
        points = main_rows(df, all_seeds=True).query("path_label == 'standard'").groupby(
            "depth").agg(x=("params_active", "first"), y=("val_bpb", "mean"))
        flags = law_flags(exchange.params_law, points["x"], points["y"])
    plot.plot_dense_law(axes[0], df, exchange, flags)
    plot.plot_exchange_gains(axes[1], exchange, "params")
    plot.plot_exchange_gains(axes[2], exchange, "compute")
    fig.suptitle("Exchange rate: what dense model is each memory model's BPB worth? 0: a dense "
                 "model of its own size\n95% intervals over the law's refits and the model's "
                 f"seed noise (pooled seed std {exchange.pooled_std:.3f} where one seed); "
                 "x: the law without the deepest depth")
    return fig


@_styled
def fig_joint_law(df) -> Figure:
    """Held-out tests of the joint laws L(N, M): each of the two deepest depths with enough
    depths below it to fit on held out in turn, fitted on the depths below it."""
    depths = sorted(main_rows(df)["depth"].unique())[MIN_FIT_DEPTHS:][-2:] or [None]
    fig, axes = _panels(len(depths), width=5.2, height=4.2)
    for ax, depth in zip(axes, depths):
        plot.plot_heldout(ax, select_joint_law(df, heldout_depth=depth))
    fig.suptitle("Which joint law L(N, M) extrapolates one depth deeper?\n"
                 "N = active params (routers included), M = slots")
    return fig


@_styled
def fig_ablations(df, *, depth: int = 6) -> Figure:
    """(e) Controls and ablations at one depth, with seed noise where there are seeds; and the
    paired comparison of LaVE x1, MoVE x1 and MoVE x4 with standard at every seeded depth."""
    fig, axes = _panels(2, width=5.8, height=4.6)
    plot.plot_variant_summary(axes[0], df[df["depth"] == depth])
    axes[0].set_title(f"depth {depth}: main runs and controls")
    plot.plot_seed_differences(axes[1], compare_to_standard(df))
    axes[1].set_title("difference to standard (Holm over the panel)")
    fig.suptitle("Ablations, controls and seed noise: which differences exceed seed noise? "
                 "(val BPB)")
    return fig


@_styled
def fig_repetition(df, curves) -> Figure:
    """Repeated data at the two deepest depths: val BPB over the epochs seen, a panel per depth
    (a memory path that memorises turns up while the standard model still falls), and final
    train loss against final val BPB (memorising: lower train loss without lower BPB)."""
    main = main_rows(df)
    depths = sorted(main["depth"].unique())[-2:]
    grid_curves = curves[curves["run_id"].isin(main["run_id"])]
    table = repetition_table(df, curves).query("depth in @depths")
    fig, axes = _panels(3, width=4.6, height=4.0)
    for ax, depth in zip(axes, depths):
        plot.plot_val_over_epochs(ax, grid_curves, depth)
    for ax in axes[len(depths):2]:
        plot.note(ax, "no runs yet")
    plot.plot_train_vs_val(axes[2], table)
    fig.suptitle("Repetition: val BPB over the epochs seen (main grid, seed 0); final BPB above "
                 "the run's best:\n" + "; ".join(_rises(runs) for _, runs in
                                                 table.groupby("depth")))
    return fig


def _rises(runs) -> str:
    """'d10, 5.0 epochs: LaVE x2 +0.009, MoVE x1 +0.015' (or 'none') for one depth's rows of
    repetition_table."""
    turned = [f"{r.path_label} +{r.rise:.3f}" for r in runs.itertuples() if r.rise > 0]
    return (f"d{runs['depth'].iloc[0]}, {runs['epochs'].max():.1f} epochs: "
            + (", ".join(turned) or "none"))


@_styled
def fig_image_scaling(df) -> Figure:
    """(g) The image sweep: bits per image token, FID and the samples' class accuracy against
    training FLOPs per value path (top), and each of them for MoVE minus standard against slots
    at each depth (bottom)."""
    fig, axes = _panels(3, nrows=2, width=4.6, height=3.8)
    for ax, column in zip(axes[:3], ("bits_per_token", "fid", "class_accuracy")):
        plot.plot_metric_vs_compute(ax, df, column)
    for ax, column in zip(axes[3:], ("bits_per_token", "fid", "class_accuracy")):
        plot.plot_metric_vs_slots(ax, df, column)
    plot.log_y(axes[1])
    fig.suptitle(f"Image scaling (Fashion-MNIST codes), {len(df)} runs: does memory lower bits "
                 f"per token and FID?\ntraining FLOPs: {plot.FLOPS_CONVENTION}")
    return fig


@_styled
def fig_decoupling(df, *, metric: str = "val_bpb", depths=(4, 6), arms=(PAPER, "symbreak"),
                   bootstrap: int = BOOTSTRAP, title: str = "") -> Figure:
    """(h) A pre-registered decoupling sweep (results/decouple-*/PLAN.md): `metric` against MoVE
    slots at each of `depths` with seed bands (top), the dense law the exchange rate reads,
    the paired gain over standard +g0 by slots for each recipe arm (bottom) and the four
    criteria of `verdict.decoupling_verdict` per arm, as computed."""
    arms = [arm for arm in arms if arm == PAPER or df["path_label"].str.endswith(f" {arm}").any()]
    fig, axes = _panels(len(depths) + 1, nrows=2, width=4.4, height=3.8)
    pooled_std = pooled_seed_std(df, metric)
    for ax, depth in zip(axes, depths):
        plot.plot_bpb_vs_slots(ax, df, depth, pooled_std, metric=metric)
    exchange = exchange_rate(df, bootstrap=bootstrap, metric=metric)
    plot.plot_dense_law(axes[len(depths)], df, exchange, metric=metric)
    gains = slot_gain_table(df, metric=metric, depths=depths, arms=arms)
    for ax, depth in zip(axes[len(depths) + 1:], depths):
        plot.plot_gain_over_baseline(ax, gains, depth, metric=metric)
    verdicts = {arm: decoupling_verdict(arm_rows(df, arm), metric=metric, depths=depths,
                                        bootstrap=bootstrap)
                for arm in arms}
    plot.plot_verdict(axes[-1], verdicts)
    fig.legend(handles=_slot_legend(df, dotted="standard +g0 (seed mean)"),
               loc="outside lower center", ncol=6, fontsize="x-small")
    def counted(table) -> str:
        held, open_ = (sum(holds is True for holds in table["holds"]),
                       sum(holds is None for holds in table["holds"]))
        return f"{held} of 4 criteria hold" + (f" ({open_} not assessable yet)" if open_ else "")
    outcome = "; ".join(f"{arm} recipe: {counted(table)}" for arm, table in verdicts.items())
    extrapolated = any(table["detail"].str.contains("extrapolated").any()
                       for table in verdicts.values() if claimed(table))
    fig.suptitle(f"{title or 'Decoupling sweep'}, {len(df)} runs: does "
                 f"{plot.METRIC_LABELS.get(metric, metric).split(' (')[0]} fall with MoVE slots "
                 f"at fixed depth?\n{outcome}"
                 + (("; the claim is made" + (" (its exchange rate by extrapolation)"
                                              if extrapolated else ""))
                    if any(claimed(table) for table in verdicts.values()) else "; no claim"))
    return fig


@_styled
def fig_decoupling_secondary(df, frequency, curves, *, depths=(4, 6),
                             labels=("MoVE x16", "MoVE x1", "LaVE x1", "standard +g0"),
                             metric: str = "val_bpb", title: str = "") -> Figure:
    """(i) The secondary analyses of a decoupling sweep's plan (`movelab.scaling.secondary`):
    per depth, val BPB minus standard by the input token's training frequency (top) and the
    effective slot count along training (bottom); the matched comparisons (iso-FLOP, equal
    total parameters) at the right."""
    fig = Figure(figsize=(5.0 * (len(depths) + 1), 9.6), layout="constrained")
    axes = fig.subplot_mosaic([[f"frequency {d}" for d in depths] + ["matched"],
                               [f"slots {d}" for d in depths] + ["matched"]])
    differences = frequency_differences(frequency, labels)
    over_training = diagnostics_over_training(curves)
    for depth in depths:
        plot.plot_frequency_differences(axes[f"frequency {depth}"], differences, depth)
        plot.plot_diagnostic_over_training(axes[f"slots {depth}"], over_training, depth)
    matched = matched_comparisons(df, metric=metric)
    plot.plot_matched_comparisons(axes["matched"], matched[matched["path_label"].isin(
        ("MoVE x1", "MoVE x4", "MoVE x16", "LaVE x1")) | (matched["reference"] != "standard")],
        metric=metric)
    fig.suptitle(f"{title or 'Decoupling sweep'}, {len(df)} runs: secondary analyses (PLAN.md; "
                 "not part of the verdict)")
    return fig


@_styled
def fig_vocabulary(df, *, metric: str = "val_bpb", title: str = "") -> Figure:
    """(j) Vocabulary as an axis (results/vocab-prose/PLAN.md, `movelab.scaling.vocabulary`):
    MoVE's paired gain over standard against occurrences per bank row with H2's slope, and each
    variant's metric against V; the title states H2's verdict as computed."""
    fig, axes = _panels(2, width=5.0, height=4.0)
    gains = vocabulary_gains(df, metric)
    slope = occurrence_slope(gains)
    plot.plot_vocabulary_gains(axes[0], gains, vocabulary_cells(df, metric=metric), slope, metric)
    plot.plot_metric_by_vocabulary(axes[1], df, metric)
    stated = (f"slope {slope['slope']:+.4f} [{slope['low']:+.4f}, {slope['high']:+.4f}] per "
              f"doubling of occurrences, {slope['n']} (V, seed) gains, {slope['dof']} dof; a trend "
              "across V at fixed tokens" if np.isfinite(slope["low"]) else "")
    fig.suptitle(f"{title or 'Vocabulary sweep'}, {len(df)} runs: does MoVE's gain grow with "
                 f"occurrences per bank row?\nH2 {slope['verdict']}" + (f"\n{stated}" if stated else ""),
                 fontsize="medium")
    return fig


@_styled
def fig_fit_validation(reference_dir: Path | str | None = None, *, bootstrap: int = BOOTSTRAP,
                       start_grid: dict = QUICK_START_GRID) -> Figure:
    """(f) The fitters on known answers: Epoch AI's Chinchilla replication (from `start_grid`),
    and recovery of power laws at the CPU sweep's scale (5 points, 0.5% noise)."""
    fig, axes = _panels(4, width=3.8, height=3.4)
    plot.plot_published_comparison(axes[0], chinchilla_reproduction(
        reference_dir, bootstrap=bootstrap, start_grid=start_grid))
    recovery = synthetic_recovery(bootstrap=bootstrap)
    for ax, parameter in zip(axes[1:], ("E", "A", "alpha")):
        plot.plot_recovery(ax, recovery, parameter)
    fig.suptitle("Fit validation: does the fitter reproduce Epoch AI's Chinchilla fit and "
                 "recover known laws?")
    return fig


DECOUPLING_SWEEPS = ("decouple-prose", "decouple-image")  # pre-registered (their PLAN.md)
VOCABULARY_SWEEPS = ("vocab-prose",)  # pre-registered (PLAN.md)
TEXT_FIGURES = ("accounting", "text_scaling", "memory_decoupling", "exchange_rate", "joint_law",
                "ablations", "repetition", "fit_validation")


def write_all_figures(out_dir: Path | str | None = None, results_dir: Path | str | None = None,
                      *, sweep: str = "cpu-text", image_sweep: str | None = "cpu-image",
                      decoupling_sweeps: tuple[str, ...] = DECOUPLING_SWEEPS,
                      vocabulary_sweeps: tuple[str, ...] = VOCABULARY_SWEEPS,
                      reference_dir: Path | str | None = None, bootstrap: int = BOOTSTRAP,
                      names: tuple[str, ...] = TEXT_FIGURES) -> list[Path]:
    """The figures `names` of the text `sweep` in `results_dir` (default: `find_results_dir()`)
    as <out_dir>/<name>.png and .svg (default: <results_dir>/figures), image_scaling of
    `image_sweep`, decoupling_<sweep> (and decoupling_secondary_<sweep> for text) of each of
    `decoupling_sweeps` and vocabulary_<sweep> of each of `vocabulary_sweeps` that has rows; the
    reference data from `reference_dir` (default: reference/ beside results_dir). Returns the
    paths written."""
    results_dir = find_results_dir() if results_dir is None else Path(results_dir)
    out_dir = results_dir / "figures" if out_dir is None else out_dir
    reference_dir = find_reference_dir(results_dir) if reference_dir is None else reference_dir
    df = load_runs(sweep, results_dir)
    makers = {
        "accounting": fig_accounting,
        "text_scaling": lambda: fig_text_scaling(df, bootstrap=bootstrap),
        "memory_decoupling": lambda: fig_memory_decoupling(
            df, load_curves(main_rows(df, all_seeds=True).query("value_path == 'move'"), sweep,
                            results_dir), pooled_depths=depths_within_epochs(df)),
        "exchange_rate": lambda: fig_exchange_rate(df, bootstrap=bootstrap),
        "joint_law": lambda: fig_joint_law(df),
        "ablations": lambda: fig_ablations(df),
        "repetition": lambda: fig_repetition(df, load_curves(main_rows(df), sweep, results_dir)),
        "fit_validation": lambda: fig_fit_validation(reference_dir, bootstrap=bootstrap),
    }
    unknown = set(names) - set(makers)
    if unknown:
        raise ValueError(f"unknown figures {sorted(unknown)}; choose from {', '.join(makers)}")
    makers = {name: makers[name] for name in names}
    if image_sweep and runs_csv_path(image_sweep, results_dir).exists():
        images = load_runs(image_sweep, results_dir)
        makers["image_scaling"] = lambda: fig_image_scaling(images)
    for name in decoupling_sweeps:
        if runs_csv_path(name, results_dir).exists():
            rows = load_runs(name, results_dir)
            makers[f"decoupling_{name}"] = functools.partial(
                fig_decoupling, rows, metric=plan_metric(rows), bootstrap=bootstrap, title=name)
            if plan_metric(rows) == "val_bpb":  # text runs record the slot diagnostics
                makers[f"decoupling_secondary_{name}"] = functools.partial(
                    lambda rows, name: fig_decoupling_secondary(
                        rows, frequency_bpb_on_test(rows, name, results_dir),
                        load_curves(rows, name, results_dir), title=name), rows, name)
    for name in vocabulary_sweeps:
        if runs_csv_path(name, results_dir).exists():
            makers[f"vocabulary_{name}"] = functools.partial(
                fig_vocabulary, load_runs(name, results_dir), title=name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in makers.items():
        fig = make()
        for extension, options in SAVE_OPTIONS.items():
            path = out_dir / f"{name}.{extension}"
            with plot.style():
                fig.savefig(path, **options)
            written.append(path)
    return written
