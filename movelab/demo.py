"""`movelab demo`: the main job, end to end on the CPU in about ten minutes. A reduced real
sweep on the default corpus (3 depths x standard, LaVE x1, MoVE x1, MoVE x4), trained into a
scratch folder (committed results are never touched), then its numbers side by side."""

from __future__ import annotations

import csv
from pathlib import Path

from movelab.sweep import load_sweep, run_sweep

DEMO_SWEEP = """\
description = "movelab demo: a reduced real sweep (3 depths x 4 value paths, half a token per parameter)"
[train]
corpus = "wiki"
batch_size = 8
evals = 2
[budget]
tokens_per_param = 0.5
[[group]]
name = "demo"
depths = [2, 4, 6]
variants = ["standard", "lave x1", "move x1", "move x4"]
"""


def run_demo(out: Path, jobs: int = 2) -> Path:
    sweep_dir = out / "demo"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "sweep.toml").write_text(DEMO_SWEEP)
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
