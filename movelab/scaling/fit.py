"""Scaling-law fits: Chinchilla's L(N, D) (Approach 3) and a power law in compute.

Both fits follow Hoffmann et al. 2022 as replicated by Epoch AI (Besiroglu et al. 2024): minimise
the summed Huber loss (delta 1e-3) between predicted and observed *log* loss with L-BFGS-B from
a grid of starting points, keep the best, and get percentile intervals from bootstrap refits
(rows resampled with replacement, each refit started from the point estimate).

Numerics. With delta = 1e-3 the summed Huber loss and its gradient are of order 1e-3, and
L-BFGS-B's stopping rules (ftol is relative to max(|f|, 1), gtol is absolute) then stop it a few
iterations from where it started, so bootstrap refits barely move and the intervals collapse.
Here the optimiser sees the objective divided by delta (about the summed absolute log residual,
of order one), with its analytic gradient and tight tolerances. The `objective` reported on a
fit is the summed Huber loss itself, in Epoch's units.

Speed. A grid of thousands of starts is screened first: the objective is evaluated at every
start at once (the log models broadcast over a leading axis of thetas), and L-BFGS-B runs only
from the SCREEN_KEEP best of them. On Epoch's 4500-start grid this finds the full grid's
optimum (tests/test_scaling_fit.py) at a small fraction of the cost
(benchmarks/bench_fit.py measures both). SciPy >= 1.15's L-BFGS-B calls BLAS/LAPACK on tiny vectors; with OpenBLAS's default
threads it runs up to a hundred times slower when the cores are busy (scipy/scipy#22438), so
the fits run with BLAS limited to one thread.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber
from threadpoolctl import threadpool_limits

HUBER_DELTA = 1e-3
# Epoch's grid of starts for (log A, log B, log E, alpha, beta): 6 x 6 x 5 x 5 x 5 = 4500 starts.
EPOCH_START_GRID = {
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
_LBFGS_OPTIONS = {"ftol": 1e-13, "gtol": 1e-11, "maxiter": 10_000, "maxfun": 20_000}
# Grids larger than SCREEN_KEEP starts are screened by their objective at the start; L-BFGS-B
# runs from the SCREEN_KEEP best. On Epoch's grid 32 of the 64 best-screened starts converge to
# the grid's optimum (objective within 1e-6; docs/research-log.md, 2026-12-01).
SCREEN_KEEP = 64

# (theta, X) -> (predicted log loss per row of X, its Jacobian in theta: rows x len(theta)).
# theta may carry leading axes (a batch of parameter vectors, last axis the parameters); the
# prediction then has shape (*batch, rows) and the Jacobian (*batch, rows, len(theta)).
LogModel = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Estimate:
    """One optimum of the Huber objective: parameters in the model's own coordinates."""

    theta: np.ndarray
    objective: float  # summed Huber loss of the log residuals
    n_iter: int  # L-BFGS-B iterations from the start that won


def screen_starts(log_model: LogModel, starts: np.ndarray, X, log_loss, delta,
                  keep: int | None = None) -> np.ndarray:
    """The `keep` (default SCREEN_KEEP) starts with the lowest objective, best first (all of them
    if there are fewer). Starts whose objective is not finite rank last."""
    keep = SCREEN_KEEP if keep is None else keep
    if len(starts) <= keep:
        return starts
    with np.errstate(all="ignore"):
        predicted, _ = log_model(starts, X)
        value = huber(delta, predicted - log_loss).sum(axis=-1)
    value = np.where(np.isfinite(value), value, np.inf)
    return starts[np.argsort(value, kind="stable")[:keep]]


def _minimise_huber(log_model: LogModel, starts, X, log_loss, delta, bounds) -> Estimate:
    def scaled_objective(theta):
        predicted, jacobian = log_model(theta, X)
        residual = predicted - log_loss
        value = huber(delta, residual).sum() / delta
        return value, jacobian.T @ np.clip(residual, -delta, delta) / delta

    best = None
    starts = screen_starts(log_model, np.asarray(starts, dtype=float), X, log_loss, delta)
    for start in starts:
        result = minimize(scaled_objective, np.asarray(start, dtype=float), jac=True,
                          method="L-BFGS-B", bounds=bounds, options=_LBFGS_OPTIONS)
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    if best is None:
        raise RuntimeError("the Huber fit diverged from every starting point")
    return Estimate(best.x, float(best.fun * delta), int(best.nit))


def fit_huber_log(log_model: LogModel, starts: Sequence, X: np.ndarray, loss: np.ndarray, *,
                  delta: float = HUBER_DELTA, bounds=None, bootstrap: int = 0,
                  seed: int = 0) -> tuple[Estimate, list[Estimate]]:
    """Minimise sum_i Huber_delta(log_model(theta, X)_i - log loss_i) from every start; keep the
    best. Then `bootstrap` refits on rows of (X, loss) resampled with replacement, each started
    from the point estimate. Returns (point estimate, refits)."""
    X, log_loss = np.asarray(X, dtype=float), np.log(np.asarray(loss, dtype=float))
    rng = np.random.default_rng(seed)
    n = len(log_loss)
    with threadpool_limits(1, user_api="blas"):
        point = _minimise_huber(log_model, starts, X, log_loss, delta, bounds)
        refits = []
        for _ in range(bootstrap):
            rows = rng.integers(0, n, n)
            refits.append(_minimise_huber(log_model, [point.theta], X[rows], log_loss[rows],
                                          delta, bounds))
    return point, refits


def log_sum_exp(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(sum_k exp(terms[k])) over the first axis, and each term's share exp(terms[k] - it)."""
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    return top + np.log(total), weights / total


def two_term_log_loss(theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(E + A / x1^alpha + B / x2^beta) for theta = (log A, log B, log E, alpha, beta) and the
    columns of X = (log x1, log x2)."""
    a, b, e, alpha, beta = (p[..., None] for p in np.moveaxis(np.asarray(theta), -1, 0))
    log_x1, log_x2 = X.T
    predicted, (w1, w2, w_e) = log_sum_exp(np.stack(np.broadcast_arrays(
        a - alpha * log_x1, b - beta * log_x2, e)))
    return predicted, np.stack([w1, w2, w_e, -w1 * log_x1, -w2 * log_x2], axis=-1)


def _positive_arrays(**arrays) -> list[np.ndarray]:
    values = [np.asarray(v, dtype=float).ravel() for v in arrays.values()]
    if len({len(v) for v in values}) != 1:
        raise ValueError(f"{', '.join(arrays)} must have the same length")
    for name, v in zip(arrays, values):
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"{name} must be finite and positive")
    return values


def percentile_interval(values, level: float = 0.95, axis: int | None = None) -> np.ndarray:
    """The central `level` percentile interval of bootstrap values, [low, high] (along `axis`):
    every interval of movelab.scaling is this one. Linear interpolation between the order
    statistics (numpy's default); NaNs left out; a bound next to an infinite value is that
    value, so an infinite one (no dense model reaches that loss) stays infinite, not NaN."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:  # no refits (or no values along `axis`): no interval
        rest = () if axis is None else np.delete(values.shape, axis)
        return np.full((2, *rest), np.nan)
    tail = 50.0 * (1.0 - level)
    q = [tail, 100.0 - tail]
    # np.percentile where there is no NaN: the same numbers as nanpercentile's but for rounding,
    # and exactly np.percentile's (what committed figures were drawn with)
    percentile = np.nanpercentile if np.isnan(values).any() else np.percentile
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slice: NaN bounds
        linear = percentile(values, q, axis=axis)
        below = percentile(values, q, axis=axis, method="lower")
        above = percentile(values, q, axis=axis, method="higher")
    finite = np.isfinite(below) & np.isfinite(above)
    return np.where(finite, linear, np.where(np.isfinite(below), above, below))


@dataclass(frozen=True, kw_only=True)
class BootstrapFit:
    """What every fit carries besides its parameters (`params`, a dict, on each subclass)."""

    objective: float  # summed Huber loss of the log residuals at the optimum
    n_iter: int  # L-BFGS-B iterations of the winning start
    bootstrap_fits: tuple = ()  # refits on resampled rows, same type, without refits of their own

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile bootstrap interval of parameter `name` at confidence `level`."""
        if not self.bootstrap_fits:
            raise ValueError("no bootstrap refits: fit again with bootstrap=K > 0")
        if name not in self.params:
            raise ValueError(f"unknown parameter {name!r}; one of {sorted(self.params)}")
        low, high = percentile_interval([fit.params[name] for fit in self.bootstrap_fits], level)
        return float(low), float(high)


@dataclass(frozen=True, kw_only=True)
class ChinchillaFit(BootstrapFit):
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    @property
    def params(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}

    def predict(self, n_params, n_tokens) -> np.ndarray:
        n, d = np.asarray(n_params, dtype=float), np.asarray(n_tokens, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta


def _chinchilla_fit(estimate: Estimate, refits: Sequence[Estimate] = ()) -> ChinchillaFit:
    a, b, e, alpha, beta = estimate.theta
    return ChinchillaFit(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)),
                         alpha=float(alpha), beta=float(beta), objective=estimate.objective,
                         n_iter=estimate.n_iter,
                         bootstrap_fits=tuple(_chinchilla_fit(r) for r in refits))


def fit_chinchilla(n_params, n_tokens, loss, *, delta: float = HUBER_DELTA, bootstrap: int = 0,
                   seed: int = 0, start_grid: dict = EPOCH_START_GRID) -> ChinchillaFit:
    """Chinchilla Approach 3 as in Epoch AI's replication: L(N, D) = E + A/N^alpha + B/D^beta,
    fitted as log L = LSE(log A - alpha log N, log B - beta log D, log E) under a summed Huber
    loss on the log loss, by L-BFGS-B from the SCREEN_KEEP points of `start_grid` with the lowest
    objective (keys a, b, e, alpha, beta; a = log A, b = log B, e = log E; the default is Epoch's
    4500 starts; about 1 s on one core).
    `bootstrap` = K > 0 adds K refits on resampled points (seeded by `seed`) for `interval`."""
    n, d, loss = _positive_arrays(n_params=n_params, n_tokens=n_tokens, loss=loss)
    starts = itertools.product(*(start_grid[k] for k in ("a", "b", "e", "alpha", "beta")))
    point, refits = fit_huber_log(two_term_log_loss, list(starts),
                                  np.column_stack([np.log(n), np.log(d)]), loss, delta=delta,
                                  bootstrap=bootstrap, seed=seed)
    return _chinchilla_fit(point, refits)


@dataclass(frozen=True, kw_only=True)
class PowerLawFit(BootstrapFit):
    """L(C) = E + A C^-alpha."""

    E: float
    A: float
    alpha: float

    @property
    def params(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "alpha": self.alpha}

    def predict(self, compute) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # runaway refits: inf, not a warning
            return self.E + self.A * np.asarray(compute, dtype=float) ** -self.alpha


def _power_law_log_loss(theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(E + exp(a - alpha log C)) for theta = (E, a, alpha); E may be 0."""
    E, a, alpha = (p[..., None] for p in np.moveaxis(np.asarray(theta), -1, 0))
    log_c = X[:, 0]
    # log 0 = -inf is a valid term (a pure power law); the line search's wilder trials may
    # overflow d/dE = 1 / L to inf, which loses that start, not the fit.
    with np.errstate(divide="ignore", over="ignore"):
        predicted, (_, w_c) = log_sum_exp(np.stack(np.broadcast_arrays(np.log(E),
                                                                       a - alpha * log_c)))
        return predicted, np.stack([np.exp(-predicted), w_c, -w_c * log_c], axis=-1)


def _power_law_fit(estimate: Estimate, refits: Sequence[Estimate] = ()) -> PowerLawFit:
    E, a, alpha = estimate.theta
    with np.errstate(over="ignore"):  # a runaway refit's A may overflow to inf: keep it
        return PowerLawFit(E=float(E), A=float(np.exp(a)), alpha=float(alpha),
                           objective=estimate.objective, n_iter=estimate.n_iter,
                           bootstrap_fits=tuple(_power_law_fit(r) for r in refits))


def fit_power_law(compute, loss, *, delta: float = HUBER_DELTA, bootstrap: int = 0,
                  seed: int = 0) -> PowerLawFit:
    """L(C) = E + A C^-alpha with E >= 0 and alpha >= 0.

    The same objective as `fit_chinchilla` (summed Huber loss of log residuals, delta 1e-3), so
    the two fits of one set of runs weigh points alike: residuals are relative, and a diverged
    or mislabelled run costs linearly, not quadratically. Least squares on log(L - E) was the
    alternative; it weighs each point by 1 / (L - E), which blows up as E nears the smallest
    loss, and it measures error in units no other fit here uses. Unlike Chinchilla, E itself is
    a parameter, bounded below by 0, so a pure power law (E = 0, common with a handful of
    points) is reachable, not a limit at log E -> -inf. Starts: E at 0 to 95% of the smallest
    loss, crossed with alphas from 0.02 to 1, each with log A set so the curve passes through
    the mean loss at the mean log compute. With 5 points, some bootstrap resamples hold fewer
    than 3 distinct computes and cannot pin 3 parameters: expect wide intervals.
    """
    compute, loss = _positive_arrays(compute=compute, loss=loss)
    log_c = np.log(compute)
    starts = [(E, np.log(loss.mean() - E) + alpha * log_c.mean(), alpha)
              for E in loss.min() * np.array([0.0, 0.5, 0.8, 0.95])
              for alpha in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)]
    point, refits = fit_huber_log(_power_law_log_loss, starts, log_c[:, None], loss, delta=delta,
                                  bounds=[(0.0, None), (None, None), (0.0, None)],
                                  bootstrap=bootstrap, seed=seed)
    return _power_law_fit(point, refits)
