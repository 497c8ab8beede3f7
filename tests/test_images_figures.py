"""The image sweep's figure, on a synthetic runs.csv in the sweep's real format: every panel
draws its runs; a sweep without image metrics gets notes, not exceptions."""

import numpy as np
import pandas as pd
import pytest

from movelab.accounting import analytic_costs
from movelab.config import build_config
from movelab.scaling.figures import fig_image_scaling
from movelab.scaling.load import load_runs
from movelab.schema import role_from_groups
from movelab.sweep import RUNS_CSV_COLUMNS
from movelab.variant import Variant

GRID = ("standard", "lave x1", "move x1", "move x4", "move x16")


def image_row(depth, variant, seed, groups, rng):
    cfg = build_config(depth=depth, vocab_size=523, seq_len=49,
                       **Variant.parse(variant).model_args)
    costs = analytic_costs(cfg)
    tokens = analytic_costs(build_config(depth=depth, vocab_size=523, seq_len=49)).params_active
    slots = cfg.slots or 0
    row = dict.fromkeys(RUNS_CSV_COLUMNS, 0)
    row.update({
        "run_id": f"i{depth}{seed}{slots}{len(variant)}", "task": "image", "groups": groups,
        "role": role_from_groups(groups),
        "variant": variant, "label": cfg.label, "value_path": cfg.value_path, "depth": depth,
        "width": cfg.width, "slots": slots, "density": cfg.density,
        "gate_standard": bool(cfg.gate_standard), "seed": seed, "vocab_size": 523, "seq_len": 49,
        "params_total": costs.params_total, "params_active": costs.params_active,
        "params_memory": costs.params["lave_tables"] + costs.params["move_bank"],
        "flops_per_token_train": costs.flops_per_token_train,
        "train_flops": tokens * costs.flops_per_token_train, "val_bpb": np.nan,
        "val_bpb_best": np.nan, "epochs": 0.5, "val_loss": 2.0, "train_loss": 2.0,
        "wall_seconds": 1.0, "tokens_per_second": 1.0, "git_commit": "abc", "git_dirty": False,
        "torch_version": "2", "corpus": "fashion-mnist", "corpus_hash": "h",
        "started_at": "2026-11-26T00:00:00+00:00", "ended_at": "2026-11-26T00:01:00+00:00",
        "bits_per_token": 2 + 4 / depth - 0.01 * np.log2(1 + slots) + rng.normal(0, 0.01),
        "fid": 30 + 200 / depth + rng.normal(0, 1), "class_accuracy": 0.5 + 0.05 * depth,
        "fid_samples": 10_000, "cfg_scale": 1.5})
    return row


def test_image_figure_draws_every_panel(tmp_path):
    rng = np.random.default_rng(0)
    rows = [image_row(d, v, 0, "grid;seeds" if d == 4 else "grid", rng)
            for d in (2, 4, 6, 8) for v in GRID]
    rows += [image_row(4, v, s, "seeds", rng) for v in ("standard", "move x4") for s in (1, 2)]
    (tmp_path / "cpu-image").mkdir()
    pd.DataFrame(rows, columns=RUNS_CSV_COLUMNS).to_csv(tmp_path / "cpu-image" / "runs.csv",
                                                        index=False)
    df = load_runs("cpu-image", tmp_path)
    assert df["val_bpb"].isna().all() and df["fid"].notna().all()
    fig = fig_image_scaling(df)
    axes = fig.axes
    assert len(axes[0].get_lines()) == len(GRID)  # one line per value path
    legend = [t.get_text() for t in axes[3].get_legend().get_texts()]
    assert legend == ["d2", "d4", "d4 standard, +-1 seed std", "d6", "d8"]  # a line per depth,
    assert len(axes[3].patches) == 1  # and the seed band where the standard model has seeds
    assert not any(t.get_text() for ax in axes for t in ax.texts)  # no "missing" notes
    assert all(ax.axison for ax in axes)  # six panels, each drawn
    differences = axes[3].get_lines()[0].get_ydata()  # MoVE minus standard at d2, by slots
    d2 = df[df["depth"] == 2].set_index("path_label")["bits_per_token"]
    assert differences == pytest.approx((d2[["MoVE x1", "MoVE x4", "MoVE x16"]]
                                         - d2["standard"]).to_numpy())


def test_image_figure_of_text_rows_notes_what_is_missing(tmp_path):
    rng = np.random.default_rng(0)
    rows = [image_row(2, "standard", 0, "grid", rng)]
    for column in ("bits_per_token", "fid", "class_accuracy"):
        rows[0][column] = np.nan
    (tmp_path / "cpu-image").mkdir()
    pd.DataFrame(rows, columns=RUNS_CSV_COLUMNS).to_csv(tmp_path / "cpu-image" / "runs.csv",
                                                        index=False)
    fig = fig_image_scaling(load_runs("cpu-image", tmp_path))
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no runs with fid" in n for n in notes)
    assert any("no MoVE runs" in n for n in notes)


def test_make_figures_adds_the_image_figure_when_the_image_sweep_has_rows(tmp_path):
    """`write_all_figures` draws image_scaling beside the text figures once cpu-image/runs.csv
    exists, and only the figures asked for; an unknown name is an error that lists the choices."""
    from movelab.scaling.figures import write_all_figures

    rng = np.random.default_rng(0)
    rows = [image_row(d, v, 0, "grid", rng) for d in (2, 4) for v in GRID]
    text_rows = [dict(row, task="text", val_bpb=3.0 - 0.1 * row["depth"], vocab_size=4096)
                 for row in rows]
    for name, table in (("cpu-image", rows), ("cpu-text", text_rows)):
        (tmp_path / name).mkdir()
        pd.DataFrame(table, columns=RUNS_CSV_COLUMNS).to_csv(tmp_path / name / "runs.csv",
                                                             index=False)
    written = write_all_figures(tmp_path / "out", tmp_path, names=("accounting",), bootstrap=5)
    assert sorted(p.name for p in written) == ["accounting.png", "accounting.svg",
                                               "image_scaling.png", "image_scaling.svg"]
    assert [p.name for p in write_all_figures(tmp_path / "text-only", tmp_path, image_sweep=None,
                                              names=("accounting",))] == [
        "accounting.png", "accounting.svg"]
    with pytest.raises(ValueError, match="unknown figures \\['nope'\\]; choose from accounting"):
        write_all_figures(tmp_path / "bad", tmp_path, names=("nope",))
