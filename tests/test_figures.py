"""Figures: every file is written, reruns are byte-identical, and missing data becomes a note on
the panel, not an exception. Runs on a small synthetic runs.csv, never the live sweep."""

import numpy as np
import pandas as pd
import pytest

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import FillBetweenPolyCollection, PathCollection
from matplotlib.figure import Figure

from movelab.accounting import analytic_costs
from movelab.config import build_config
from movelab.scaling.analysis import band_is_drawn, fit_compute_laws, main_rows
from movelab.scaling.figures import (fig_ablations, fig_accounting, fig_exchange_rate,
                                     fig_fit_validation, fig_image_scaling, fig_joint_law,
                                     fig_memory_decoupling, fig_repetition, fig_text_scaling,
                                     write_all_figures)
from movelab.scaling.load import load_curves, load_runs
from movelab.variant import Variant

FIGURES = ("accounting", "text_scaling", "memory_decoupling", "exchange_rate", "joint_law",
           "ablations", "repetition", "fit_validation")
GRID = ("standard", "lave x1", "move x1", "move x4")


def synthetic_run(depth: int, variant: str, seed: int, groups: str, rng) -> dict:
    """One runs.csv row with the model's real accounting and a BPB from a made-up law."""
    cfg = build_config(depth=depth, **Variant.parse(variant).model_args)
    costs = analytic_costs(cfg)
    tokens = analytic_costs(build_config(depth=depth)).params_active
    slots = cfg.slots or 0
    bpb = (1.0 + 30.0 * costs.params_active ** -0.25 * (1 + slots) ** -0.02
           * np.exp(rng.normal(0, 0.003)))
    return {"run_id": f"r{depth}{seed}{len(variant)}{slots}", "groups": groups,
            "variant": variant, "label": cfg.label, "value_path": cfg.value_path, "depth": depth,
            "width": cfg.width, "slots": slots, "density": cfg.density,
            "gate_standard": bool(cfg.gate_standard), "seed": seed,
            "params_total": costs.params_total, "params_active": costs.params_active,
            "params_memory": costs.params["lave_tables"] + costs.params["move_bank"],
            "flops_per_token_train": costs.flops_per_token_train,
            "train_flops": tokens * costs.flops_per_token_train, "tokens_seen": tokens,
            "epochs": tokens / 1e6, "val_bpb": bpb}


def write_curve(run_dir, row: dict, turns_up: bool) -> None:
    """Six evaluations falling to the run's val_bpb; with turns_up, the fifth is 0.01 lower."""
    falling = row["val_bpb"] + 0.2 * np.linspace(5 / 6, 0, 6)
    if turns_up:
        falling[4] = row["val_bpb"] - 0.01
    run_dir.mkdir(parents=True)
    pd.DataFrame({"step": np.arange(1, 7), "tokens": row["tokens_seen"] * np.arange(1, 7) / 6,
                  "flops": 0, "lr_scale": 1.0, "train_loss": 3 * falling, "val_loss": falling,
                  "val_bpb": falling}).to_csv(run_dir / "curve.csv", index=False)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """cpu-text/runs.csv: a grid at depths 2-8, seeds 1-2 and two controls at depth 6, and each
    run's curve.csv; the memory paths' val BPB turns up at the end at depth 8."""
    rng = np.random.default_rng(0)
    rows = [synthetic_run(d, v, 0, "grid;seeds" if d == 6 else "grid", rng)
            for d in (2, 4, 6, 8) for v in GRID]
    rows += [synthetic_run(6, v, seed, "seeds", rng) for v in GRID for seed in (1, 2)]
    rows += [synthetic_run(6, v, 0, "controls", rng) for v in ("move x4 g0=1", "lave x1 +g0")]
    folder = tmp_path_factory.mktemp("results")
    (folder / "cpu-text").mkdir()
    pd.DataFrame(rows).to_csv(folder / "cpu-text" / "runs.csv", index=False)
    for row in rows:
        write_curve(folder / "cpu-text" / "runs" / row["run_id"], row,
                    turns_up=row["depth"] == 8 and row["value_path"] != "standard")
    return folder


def test_writes_every_figure_as_png_and_svg_byte_identical_on_rerun(results_dir, tmp_path,
                                                                    capsys):
    """A rerun, here by `movelab figures` (what `make figures` runs), draws the same bytes."""
    from movelab.cli import main

    reference = tmp_path / "no-reference"  # the Chinchilla panel is skipped with a note
    first = write_all_figures(tmp_path / "a", results_dir, reference_dir=reference, bootstrap=10)
    assert main(["figures", "--results-dir", str(results_dir), "--out", str(tmp_path / "b"),
                 "--reference-dir", str(reference), "--bootstrap", "10"]) == 0
    second = [tmp_path / "b" / line.rsplit("/", 1)[-1]
              for line in capsys.readouterr().out.splitlines()]
    assert [p.name for p in second] == [p.name for p in first]
    expected = {f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")}
    assert {p.name for p in first} == expected == {p.name for p in (tmp_path / "a").iterdir()}
    for a, b in zip(first, second):
        assert a.stat().st_size > 1000, a.name
        assert a.read_bytes() == b.read_bytes(), a.name
    svg = (tmp_path / "a" / "text_scaling.svg").read_text()
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg


def texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_figures_of_an_empty_sweep_say_what_is_missing(results_dir):
    empty = load_runs("cpu-text", results_dir).iloc[:0]
    assert "no runs yet" in texts(fig_text_scaling(empty, bootstrap=5))
    assert "no depth has MoVE runs" in texts(fig_memory_decoupling(empty))
    assert "a fit needs 4" in texts(fig_exchange_rate(empty, bootstrap=5))
    assert "joint law not compared" in texts(fig_joint_law(empty))
    assert "no runs at this depth yet" in texts(fig_ablations(empty))
    assert "no runs yet" in texts(fig_repetition(empty, load_curves(empty, "cpu-text",
                                                                    results_dir)))


def test_figures_of_a_partial_sweep_draw_what_they_can(results_dir):
    """Depths 2 and 4 only: points, no fits, no held-out depth."""
    partial = load_runs("cpu-text", results_dir).query("depth <= 4")
    fig = fig_text_scaling(partial, bootstrap=5)
    assert "no standard L(C) fit yet" in texts(fig)
    assert "(no fit)" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert "holding one out needs 3 shallower ones" in texts(fig_joint_law(partial))


def test_repetition_names_the_runs_whose_val_bpb_turned_up(results_dir):
    df = load_runs("cpu-text", results_dir)
    fig = fig_repetition(df, load_curves(df, "cpu-text", results_dir))
    assert fig.get_suptitle().endswith("epochs: none; d8, 2.1 epochs: LaVE x1 +0.010, "
                                       "MoVE x1 +0.010, MoVE x4 +0.010")
    assert [ax.get_title().split(":")[0] for ax in fig.axes[:2]] == ["depth 6", "depth 8"]


def test_fit_validation_notes_missing_reference_data(tmp_path):
    assert "no reference points" in texts(fig_fit_validation(tmp_path, bootstrap=5))


def test_command_line_reports_a_missing_sweep_in_one_line(tmp_path, capsys):
    from movelab.cli import main

    assert main(["figures", "--results-dir", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "movelab sweep run cpu-text" in err and err.count("\n") == 1


def test_command_line_help_states_the_defaults_of_write_all_figures():
    """`movelab figures` passes on only the flags given, so write_all_figures' defaults apply;
    its help must state them."""
    import inspect

    from movelab.cli import build_parser

    figures = build_parser()._subparsers._group_actions[0].choices["figures"]
    helps = {a.dest: a.help for a in figures._actions}
    checked = [name for name, parameter in inspect.signature(write_all_figures).parameters.items()
               if isinstance(parameter.default, (str, int)) and name in helps]
    assert set(checked) == {"sweep", "image_sweep", "bootstrap"}
    for name in checked:
        default = inspect.signature(write_all_figures).parameters[name].default
        assert f"default {default})" in helps[name], name


# --- what a reader sees: axes, panels, labels ----------------------------------------------

def drawn_points(ax) -> np.ndarray:
    """(x, y) of every marker on the panel: scatter offsets and lines drawn with a marker,
    interval bars with their caps among them (not law curves, bands or reference lines)."""
    points = [c.get_offsets() for c in ax.collections
              if isinstance(c, PathCollection) and len(c.get_offsets())]
    points += [line.get_xydata() for line in ax.lines
               if line.get_marker() not in ("None", "", None, " ")
               and len(line.get_xydata())]
    return np.vstack([np.asarray(p, dtype=float) for p in points]) if points else np.empty((0, 2))


def _span(values, log: bool) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    return float(np.ptp(np.log10(values) if log else values)) if values.size else 0.0


def reader_defects(fig) -> list[str]:
    """What a careful reader would reject: a visible panel with no points, an axis more than
    10x wider than the points drawn on it, and text that runs off the figure."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    defects = []
    for i, ax in enumerate(fig.axes):
        if not ax.axison:
            continue
        points = drawn_points(ax)
        if len(points) == 0:
            defects.append(f"panel {i} ({ax.get_title()!r}) draws no points")
            continue
        for axis, column, limits in (("x", 0, ax.get_xlim()), ("y", 1, ax.get_ylim())):
            log = (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log"
            data = _span(points[:, column], log)
            if data > 0 and _span(limits, log) > 10 * data:
                defects.append(f"panel {i} ({ax.get_title()!r}): {axis} axis spans "
                               f"{_span(limits, log) / data:.0f}x its points")
    box = fig.bbox
    drawn = [(f"panel {i} ({ax.get_title()!r})", ax.get_tightbbox(renderer))
             for i, ax in enumerate(fig.axes) if ax.get_visible()]
    drawn += [(f"text {t.get_text()[:40]!r}", t.get_window_extent(renderer))
              for t in [*fig.texts, fig._suptitle] if t is not None and t.get_text()]
    drawn += [("figure legend", legend.get_window_extent(renderer)) for legend in fig.legends]
    for what, extent in drawn:
        if (extent.x0 < box.x0 - 2 or extent.x1 > box.x1 + 2 or extent.y0 < box.y0 - 2
                or extent.y1 > box.y1 + 2):
            defects.append(f"{what} runs off the figure")
    return defects


def every_figure(df, curves, images=None, bootstrap=10):
    figures = {"accounting": fig_accounting(),
               "text_scaling": fig_text_scaling(df, bootstrap=bootstrap),
               "memory_decoupling": fig_memory_decoupling(df, curves),
               "exchange_rate": fig_exchange_rate(df, bootstrap=bootstrap),
               "joint_law": fig_joint_law(df), "ablations": fig_ablations(df),
               "repetition": fig_repetition(df, curves),
               "fit_validation": fig_fit_validation(bootstrap=bootstrap)}
    if images is not None:
        figures["image_scaling"] = fig_image_scaling(images)
    return figures


def test_every_figure_of_a_synthetic_sweep_is_readable(results_dir):
    df = load_runs("cpu-text", results_dir)
    figures = every_figure(df, load_curves(df, "cpu-text", results_dir))
    for name, fig in figures.items():
        assert reader_defects(fig) == [], name
        assert not texts(fig), name  # a complete sweep leaves no "missing" notes


def test_every_figure_of_the_committed_rows_is_readable():
    """The rows in results/: where the defects were found (a runaway band set an axis to
    1e26, d2 set the scale of every depth, labels ran off the figure). Laws whose refits run
    away get no band and say so; the joint law shows the d8 hold-out the verdict uses."""
    df = load_runs("cpu-text")
    curves = load_curves(main_rows(df, all_seeds=True))
    figures = every_figure(df, curves, load_runs("cpu-image"), bootstrap=20)
    for name, fig in figures.items():
        assert reader_defects(fig) == [], name
    joint = figures["joint_law"]
    assert [ax.get_title().split()[0] for ax in joint.axes] == ["d8", "d10"]
    laws = fit_compute_laws(df, bootstrap=20)  # the same seeded refits as the figure's
    legend = [t.get_text() for t in figures["text_scaling"].axes[0].get_legend().get_texts()]
    flagged = [label for label, flags in laws.flags.items() if not band_is_drawn(flags)]
    assert flagged  # on the committed rows several paths' refits run away
    for label in flagged:
        assert any(text.startswith(label + ":") and "no band" in text for text in legend)
    bands = [c for c in figures["text_scaling"].axes[0].collections
             if isinstance(c, FillBetweenPolyCollection)]
    assert len(bands) == len(laws.fits) - len(flagged)


def test_the_defect_check_finds_a_band_that_sets_the_axis():
    fig = Figure()
    ax = fig.subplots()
    ax.scatter([1, 2, 3], [2.0, 2.1, 2.2])
    ax.fill_between([1, 3], [0, 0], [40, 40])  # a band 200x taller than the points
    assert any("y axis spans" in d for d in reader_defects(fig))
    ax.set_ylim(1.9, 2.3)
    assert reader_defects(fig) == []
    ax.set_title("x" * 400)
    assert any("runs off the figure" in d for d in reader_defects(fig))


def test_titles_ask_and_panels_say_what_is_a_single_seed(results_dir):
    df = load_runs("cpu-text", results_dir)
    curves = load_curves(df, "cpu-text", results_dir)
    for fig in (fig_text_scaling(df, bootstrap=5), fig_memory_decoupling(df, curves),
                fig_exchange_rate(df, bootstrap=5), fig_joint_law(df), fig_ablations(df)):
        assert "?" in fig.get_suptitle()
    labels = [t.get_text() for t in fig_ablations(df).axes[0].get_yticklabels()]
    assert "MoVE x4 g0=1 (1 seed)" in labels and "MoVE x4 (3 seeds)" in labels
    decoupling = fig_memory_decoupling(df, curves)
    d6 = next(ax for ax in decoupling.axes if ax.get_title() == "depth 6 (3 seeds)")
    assert d6.patches  # the standard model's seed band
    d8 = next(ax for ax in decoupling.axes if ax.get_title() == "depth 8 (1 seed)")
    hollow = [c for c in d8.collections if isinstance(c, PathCollection)
              and np.allclose(c.get_facecolors()[:, :3], 1.0)]
    assert len(hollow) == 2  # MoVE x1 and x4 at d8: single seeds, drawn hollow


def test_joint_law_draws_each_hold_out_it_can(results_dir):
    """d2-d8: only d8 has three shallower depths to fit on (the committed rows: d8 and d10,
    above)."""
    fig = fig_joint_law(load_runs("cpu-text", results_dir))
    assert [ax.get_title().split()[0] for ax in fig.axes] == ["d8"]
