"""The main job's pipeline on a tiny sweep: train, tabulate, fit, draw."""

import math

import numpy as np

from movelab.demo import DEMO_FIGURES, draw_figures, format_fits, format_table, run_demo

TINY_DEMO = """\
description = "tiny demo"
[train]
corpus = "{corpus}"
batch_size = 4
evals = 1
[budget]
tokens_per_param = 0.5
[[group]]
name = "grid"
depths = [1, 2, 3, 4]
variants = ["standard", "move x2"]
model = {{width = 32, heads = 1, vocab_size = 320, seq_len = 32}}
"""


def test_the_demo_trains_fits_and_draws(tmp_path, corpus, cache, monkeypatch):
    monkeypatch.setenv("MOVELAB_CACHE", str(cache))
    runs_csv = run_demo(tmp_path, sweep_toml=TINY_DEMO.format(corpus=corpus))
    table = format_table(runs_csv).splitlines()
    assert len(table) == 2 + 8 and all("standard" in l or "move x2" in l for l in table[2:])
    fits = format_fits(tmp_path).splitlines()[1:3]  # then, if a law is flagged, a key to flags
    assert [line.split()[0] for line in fits] == ["standard", "MoVE"]
    alphas = [float(line.split("]")[-2].split("[")[0].split()[-1]) for line in fits]
    assert all(math.isfinite(a) and a > 0 for a in alphas)
    written = draw_figures(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{name}.{ext}" for name in DEMO_FIGURES for ext in ("png", "svg"))
    assert all(p.stat().st_size > 1000 for p in written)


def test_the_fit_table_says_when_E_sits_at_its_bound(tmp_path):
    """Four standard runs on a pure power law: E = 0 fits them exactly, and the printed table
    says the floor sits at its bound instead of printing "E 0 [0, 0]" as if it were measured."""
    import pandas as pd

    from movelab.scaling.load import REQUIRED_COLUMNS

    flops = np.geomspace(1e11, 1e14, 4)
    rows = [dict.fromkeys(REQUIRED_COLUMNS, 0) | {
        "run_id": f"r{depth}", "groups": "grid", "variant": "standard", "value_path": "standard",
        "depth": depth, "gate_standard": False, "density": np.nan, "train_flops": int(c),
        "val_bpb": 12.0 * c ** -0.06} for depth, c in zip((2, 4, 6, 8), flops)]
    (tmp_path / "demo").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "demo" / "runs.csv", index=False)
    lines = format_fits(tmp_path).splitlines()
    assert lines[1].startswith("standard") and "E at its bound 0" in lines[1]
    assert lines[-1].startswith("E at its bound 0: the points fit a pure power law")
