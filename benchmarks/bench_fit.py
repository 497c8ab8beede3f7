"""Speed of the Chinchilla reproduction fit: Epoch's 4500-start grid, every start run to
convergence (the old path) against the screened path (L-BFGS-B from the best SCREEN_KEEP starts
only), the optimum each finds, and 1,000 bootstrap refits. A benchmark, not a test: run it on an
idle machine and read the ratios.

    python benchmarks/bench_fit.py [--reference-dir DIR] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

from movelab.scaling import fit

HERE = Path(__file__).resolve().parent


def chinchilla_points(reference_dir: Path):
    points = pd.read_csv(reference_dir / "chinchilla_fig4_points.csv").sort_values("loss").iloc[:-5]
    n = points["Model Size"].to_numpy()
    return n, points["Training FLOP"].to_numpy() / (6 * n), points["loss"].to_numpy()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-dir", type=Path, default=None,
                        help="folder holding chinchilla_fig4_points.csv (default: reference/ "
                             "beside the nearest results/)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    from movelab.scaling.load import find_reference_dir
    points = chinchilla_points(args.reference_dir or find_reference_dir())

    screened, t_screened = timed(fit.fit_chinchilla, *points)
    with mock.patch.object(fit, "SCREEN_KEEP", 10**9):
        full, t_full = timed(fit.fit_chinchilla, *points)
    print(f"4500-start grid, every start: {t_full:6.1f} s   {full.params}")
    print(f"screened to {fit.SCREEN_KEEP} starts:     {t_screened:6.1f} s   {screened.params}")
    agree = all(np.isclose(full.params[k], screened.params[k], rtol=5e-5) for k in full.params)
    print(f"same optimum to 4 significant figures: {agree}; speed-up {t_full / t_screened:.1f}x")
    boot, t_boot = timed(fit.fit_chinchilla, *points, bootstrap=args.bootstrap, seed=0)
    print(f"grid + {args.bootstrap} bootstrap refits: {t_boot:6.1f} s "
          f"(E 95% {boot.interval('E')}, alpha {boot.interval('alpha')})")


if __name__ == "__main__":
    main()
