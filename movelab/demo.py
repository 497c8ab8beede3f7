"""`movelab demo`: the main job, end to end on the CPU in about a quarter of an hour. A reduced
real sweep on the default corpus (4 depths x standard, LaVE x1, MoVE x1, MoVE x4), trained into
a scratch folder (committed results are never touched), then its numbers side by side, the
L(C) fit of each value path with bootstrap intervals, and the sweep's figures."""

from __future__ import annotations

import csv
from pathlib import Path

from movelab.sweep import load_sweep, run_sweep

# Four depths because a law E + A C^-alpha has three parameters (movelab.scaling.analysis);
# 0.4 tokens per parameter keeps d8, which costs more than d2-d6 together, to a few minutes.
DEMO_SWEEP = """\
description = "movelab demo: a reduced real sweep (4 depths x 4 value paths, 0.4 tokens per parameter)"
[train]
corpus = "wiki"
batch_size = 8
evals = 2
[budget]
tokens_per_param = 0.4
[[group]]
name = "grid"  # the analysis fits the runs of the "grid" group
depths = [2, 4, 6, 8]
variants = ["standard", "lave x1", "move x1", "move x4"]
"""
DEMO_FIGURES = ("text_scaling", "memory_decoupling", "exchange_rate", "joint_law")
DEMO_BOOTSTRAP = 100


def run_demo(out: Path, jobs: int = 2, sweep_toml: str = DEMO_SWEEP) -> Path:
    """Train what is missing of the demo sweep in out/demo; returns its runs.csv."""
    sweep_dir = out / "demo"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "sweep.toml").write_text(sweep_toml)
    sweep = load_sweep("demo", out)
    failures = run_sweep(sweep, jobs=jobs, threads_per_job=1)
    if failures:
        raise RuntimeError(f"{failures} demo run(s) failed; see {sweep_dir}/runs/*/train.log")
    return sweep_dir / "runs.csv"


def format_table(runs_csv: Path) -> str:
    with open(runs_csv) as file:
        rows = list(csv.DictReader(file))
    header = (f"{'depth':>5}  {'value path':<12}{'params':>10}{'memory':>10}{'active':>10}"
              f"{'FLOP/token':>12}{'tokens':>10}{'val BPB':>9}{'tok/s':>8}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['depth']:>5}  {r['variant']:<12}{int(r['params_total']):>10,}"
                     f"{int(r['params_memory']):>10,}{int(r['params_active']):>10,}"
                     f"{int(r['flops_per_token_train']):>12,}{int(r['tokens_seen']):>10,}"
                     f"{float(r['val_bpb']):>9.4f}{float(r['tokens_per_second']):>8,.0f}")
    return "\n".join(lines)


def format_fits(out: Path) -> str:
    """val_bpb = E + A C^-alpha per value path (C = training FLOPs), 95% bootstrap intervals, and
    what the points cannot identify (`movelab.scaling.analysis.law_flags`): three parameters
    fitted to four points often leave E at its bound 0, which the table says."""
    from movelab.scaling.analysis import fit_compute_laws
    from movelab.scaling.load import load_runs

    table = fit_compute_laws(load_runs("demo", out), bootstrap=DEMO_BOOTSTRAP).table
    lines = [f"{'value path':<12}{'E':>22}{'A':>26}{'alpha':>24}  not identified / note"]
    for row in table.itertuples():
        cells = [f"{getattr(row, p):.3g} [{getattr(row, p + '_low'):.3g}, "
                 f"{getattr(row, p + '_high'):.3g}]" for p in ("E", "A", "alpha")]
        said = "; ".join(text for text in (row.flags, row.note) if text)
        lines.append(f"{row.path_label:<12}{cells[0]:>22}{cells[1]:>26}{cells[2]:>24}  {said}")
    if table["flags"].str.len().any():
        lines.append("E at its bound 0: the points fit a pure power law A C^-alpha, the floor is "
                     "not identified; E's interval reaches 0: the bootstrap cannot tell a floor "
                     "from none; bootstrap predictions run away: refits leave the points' range")
    return "\n".join(lines)


def draw_figures(out: Path) -> list[Path]:
    """The demo sweep's figures, PNG and SVG, into out/demo/figures."""
    from movelab.scaling.figures import write_all_figures

    return write_all_figures(out / "demo" / "figures", out, sweep="demo", image_sweep=None,
                             bootstrap=DEMO_BOOTSTRAP, names=DEMO_FIGURES)
