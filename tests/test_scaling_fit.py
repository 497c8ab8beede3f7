"""Chinchilla Approach 3 and the compute power law: Epoch AI's reproduction, bootstrap intervals
that do not collapse, and recovery of known parameters."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movelab.scaling import fit_chinchilla, fit_power_law

# the project's copy (reference/README.md)
POINTS = Path(__file__).resolve().parents[1] / "reference" / "chinchilla_fig4_points.csv"
# Epoch AI (Besiroglu et al. 2024): Huber fit and 95% bootstrap intervals (reference README).
EPOCH_FIT = {"E": 1.8172, "A": 477.8, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672}
EPOCH_INTERVALS = {"E": (1.769, 1.871), "A": (285.0, 744.0), "B": (1042.0, 5810.0),
                   "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}
NAMES = ("a", "b", "e", "alpha", "beta")  # start_grid keys: log A, log B, log E, alpha, beta
COARSE_GRID = {"a": (0.0, 10.0, 20.0), "b": (0.0, 10.0, 20.0), "e": (-1.0, 0.0, 1.0),
               "alpha": (0.0, 1.0, 2.0), "beta": (0.0, 1.0, 2.0)}


def single_start(a, b, e, alpha, beta):
    return dict(zip(NAMES, ((a,), (b,), (e,), (alpha,), (beta,))))


@pytest.fixture(scope="module")
def chinchilla_points():
    points = pd.read_csv(POINTS).sort_values("loss").iloc[:-5]  # Epoch drops the 5 highest
    n = points["Model Size"].to_numpy()
    return n, points["Training FLOP"].to_numpy() / (6 * n), points["loss"].to_numpy()


@pytest.fixture(scope="module")
def epoch_fit(chinchilla_points):
    """Epoch's full grid of 4500 starts plus 80 bootstrap refits: about 30 s on one core."""
    return fit_chinchilla(*chinchilla_points, bootstrap=80, seed=0)


def test_reproduces_epoch_huber_fit(chinchilla_points, epoch_fit):
    assert len(chinchilla_points[0]) == 240
    for name, published in EPOCH_FIT.items():
        assert epoch_fit.params[name] == pytest.approx(published, rel=0.01), name


def test_bootstrap_intervals_have_the_published_width(epoch_fit):
    """Collapsed intervals (refits stuck at their start) are ~1000 times too narrow."""
    assert len(epoch_fit.bootstrap_fits) == 80
    for name, (low, high) in EPOCH_INTERVALS.items():
        ours = epoch_fit.interval(name)
        assert ours[0] < epoch_fit.params[name] < ours[1], name
        assert 0.5 < (ours[1] - ours[0]) / (high - low) < 2.0, (name, ours)


def test_bootstrap_refits_move_away_from_the_point_estimate(epoch_fit):
    iterations = [refit.n_iter for refit in epoch_fit.bootstrap_fits]
    assert np.median(iterations) > 10
    alphas = [refit.alpha for refit in epoch_fit.bootstrap_fits]
    assert np.std(alphas) > 0.005


def test_refit_from_the_point_estimate_finds_the_grid_optimum(chinchilla_points, epoch_fit):
    """What each bootstrap refit does (one start, at the point estimate) on a resample, against
    a grid of 243 starts on the same resample."""
    rows = np.random.default_rng(123).integers(0, 240, 240)
    resample = [values[rows] for values in chinchilla_points]
    p = epoch_fit.params
    refit = fit_chinchilla(*resample, start_grid=single_start(
        np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), p["alpha"], p["beta"]))
    grid = fit_chinchilla(*resample, start_grid=COARSE_GRID)
    assert refit.objective <= grid.objective * (1 + 1e-9)
    for name in EPOCH_FIT:
        assert refit.params[name] == pytest.approx(grid.params[name], rel=1e-3), name


def test_grid_beats_a_single_bad_start(chinchilla_points, epoch_fit):
    stuck = fit_chinchilla(*chinchilla_points, start_grid=single_start(25, 25, 1, 2, 2))
    assert stuck.objective > 5 * epoch_fit.objective


def test_interval_needs_bootstrap_refits_and_a_known_name(epoch_fit):
    with pytest.raises(ValueError, match="bootstrap"):
        epoch_fit.bootstrap_fits[0].interval("E")
    with pytest.raises(ValueError, match="unknown parameter"):
        epoch_fit.interval("gamma")


CHINCHILLA_TRUTH = {"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.33, "beta": 0.30}


def chinchilla_law(n, d):
    t = CHINCHILLA_TRUTH
    return t["E"] + t["A"] / n ** t["alpha"] + t["B"] / d ** t["beta"]


@pytest.fixture(scope="module")
def synthetic_grid():
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 7), np.geomspace(1e9, 1e12, 7))
    return n.ravel(), d.ravel()


def test_recovers_chinchilla_parameters_exactly_without_noise(synthetic_grid):
    fit = fit_chinchilla(*synthetic_grid, chinchilla_law(*synthetic_grid), start_grid=COARSE_GRID)
    for name, value in CHINCHILLA_TRUTH.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-6), name
    n, d = 3e10, 5e12  # beyond the grid
    assert fit.predict(n, d) == pytest.approx(chinchilla_law(n, d), rel=1e-9)


def test_recovers_chinchilla_parameters_from_noisy_losses(synthetic_grid):
    n, d = synthetic_grid
    noise = np.exp(np.random.default_rng(0).normal(0.0, 0.003, n.size))  # 0.3% per point
    fit = fit_chinchilla(n, d, chinchilla_law(n, d) * noise, start_grid=COARSE_GRID)
    tolerance = {"E": 0.03, "A": 0.25, "B": 0.25, "alpha": 0.05, "beta": 0.05}
    for name, value in CHINCHILLA_TRUTH.items():
        assert fit.params[name] == pytest.approx(value, rel=tolerance[name]), name


def power_law(compute, E, A, alpha):
    return E + A * compute ** -alpha


@pytest.mark.parametrize("n_points", [5, 6])
@pytest.mark.parametrize("truth", [(1.5, 400.0, 0.15), (0.0, 20.0, 0.05)])
def test_power_law_recovers_a_handful_of_exact_points(n_points, truth):
    compute = np.geomspace(1e15, 1e19, n_points)
    fit = fit_power_law(compute, power_law(compute, *truth))
    assert fit.E == pytest.approx(truth[0], abs=1e-6)
    assert fit.A == pytest.approx(truth[1], rel=1e-4)
    assert fit.alpha == pytest.approx(truth[2], rel=1e-4)
    assert fit.predict(1e21) == pytest.approx(power_law(1e21, *truth), rel=1e-6)


def test_power_law_from_noisy_points_with_intervals():
    truth = (1.5, 400.0, 0.15)
    compute = np.geomspace(1e15, 1e19, 8)
    noise = np.exp(np.random.default_rng(1).normal(0.0, 0.003, 8))
    fit = fit_power_law(compute, power_law(compute, *truth) * noise, bootstrap=100, seed=0)
    assert fit.E == pytest.approx(truth[0], rel=0.05)
    assert fit.alpha == pytest.approx(truth[2], rel=0.1)
    for name, value in zip(("E", "A", "alpha"), truth):
        low, high = fit.interval(name)
        assert low < value < high, name
    low, high = fit.interval("alpha")
    assert high - low > 0.005  # the refits moved


def test_power_law_keeps_E_non_negative():
    compute = np.geomspace(1e15, 1e19, 8)
    noise = np.exp(np.random.default_rng(2).normal(0.0, 0.003, 8))
    fit = fit_power_law(compute, power_law(compute, 0.0, 20.0, 0.05) * noise, bootstrap=50)
    assert 0.0 <= fit.E < 0.3
    assert fit.alpha == pytest.approx(0.05, rel=0.1)
    assert all(refit.E >= 0.0 for refit in fit.bootstrap_fits)


def test_rejects_mismatched_or_non_positive_inputs():
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([1e15, 1e16], [3.0])
    with pytest.raises(ValueError, match="positive"):
        fit_chinchilla([1e8, 1e9], [1e10, 1e11], [3.0, 0.0])


def test_one_percentile_interval_for_every_bootstrap():
    """Linear between order statistics (as np.percentile), NaNs left out, and an infinite
    value at a bound kept infinite (a dense equivalent below a law's floor), not NaN."""
    from movelab.scaling.fit import percentile_interval

    rng = np.random.default_rng(0)
    values = rng.normal(size=200)
    assert np.allclose(percentile_interval(values), np.percentile(values, [2.5, 97.5]))
    assert np.allclose(percentile_interval(np.append(values, np.nan), 0.9),
                       np.percentile(values, [5, 95]))
    grid = rng.normal(size=(200, 3))
    assert np.allclose(percentile_interval(grid, axis=0), np.percentile(grid, [2.5, 97.5], axis=0))
    floored = np.append(values[:190], [np.inf] * 10)
    low, high = percentile_interval(floored)
    assert low == pytest.approx(np.percentile(np.append(values[:190], [1e300] * 10), 2.5))
    assert high == np.inf  # where np.percentile gives NaN
    assert np.isnan(percentile_interval([np.nan, np.nan])).all()
    assert np.isnan(percentile_interval([])).all() and percentile_interval([]).shape == (2,)
    assert percentile_interval(np.empty((0, 3)), axis=0).shape == (2, 3)
