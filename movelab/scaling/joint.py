"""Joint laws of loss in active compute N and memory M, chosen by held-out extrapolation error.

N is the active parameter count (or FLOPs per token); M is the number of MoVE memory slots
(or any memory size in units where M = 1 is one slot: bank parameters / (V d_kv)). Memory enters
through log(1 + M), the log of the number of value sources each head mixes (the standard value
path plus M slots), so dense models (M = 0) sit on the same surface with log(1 + M) = 0.

Forms (each fitted like Chinchilla: summed Huber loss, delta 1e-3, of log residuals, L-BFGS-B
from a grid of starts; see movelab.scaling.fit):
  additive   L = E + A / N^alpha + B / (1 + M)^gamma
             memory removes up to B of loss, the same amount whatever the size of the model.
  effective  L = E + A / (N (1 + M)^(gamma / alpha))^alpha = E + A / (N^alpha (1 + M)^gamma)
             memory multiplies the effective parameter count, so its gain shrinks with N.
  bilinear   log L = a log N + b log(1 + M) + c log N log(1 + M) + d
             Clark et al. 2022 (Unified Scaling Laws for Routed Language Models), with the
             expert count replaced by 1 + M; c != 0 lets the memory exponent change with N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from movelab.scaling.fit import (HUBER_DELTA, BootstrapFit, Estimate, LogModel, fit_huber_log,
                                 log_sum_exp, two_term_log_loss)

_E_FRACTIONS = (0.2, 0.5, 0.8)  # starting E, as a fraction of the smallest loss
_EXPONENTS = (0.1, 0.3, 0.6, 1.0)  # starting alpha and gamma


def _effective_log_loss(theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(E + exp(a - alpha log N - gamma log(1 + M))) for theta = (a, e, alpha, gamma)."""
    a, e, alpha, gamma = theta
    log_n, log_m = X.T
    predicted, (w_a, w_e) = log_sum_exp(
        np.stack([a - alpha * log_n - gamma * log_m, np.full_like(log_n, e)]))
    return predicted, np.column_stack([w_a, w_e, -w_a * log_n, -w_a * log_m])


def _bilinear_design(X: np.ndarray) -> np.ndarray:
    log_n, log_m = X.T
    return np.column_stack([log_n, log_m, log_n * log_m, np.ones_like(log_n)])


def _bilinear_log_loss(theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    design = _bilinear_design(X)
    return design @ theta, design


# Starts are scale-free: E at fractions of the smallest loss, exponents from a small grid, and
# each coefficient set so its term carries its share of mean(L) - E at the mean covariates.
def _additive_starts(X, loss):
    log_n, log_m = X.T
    for fraction in _E_FRACTIONS:
        E = fraction * loss.min()
        half_gap = np.log((loss.mean() - E) / 2)  # the two terms share the gap equally
        for alpha in _EXPONENTS:
            for gamma in _EXPONENTS:
                yield (half_gap + alpha * log_n.mean(), half_gap + gamma * log_m.mean(),
                       np.log(E), alpha, gamma)


def _effective_starts(X, loss):
    log_n, log_m = X.T
    for fraction in _E_FRACTIONS:
        E = fraction * loss.min()
        for alpha in _EXPONENTS:
            for gamma in _EXPONENTS:
                yield (np.log(loss.mean() - E) + alpha * log_n.mean() + gamma * log_m.mean(),
                       np.log(E), alpha, gamma)


def _bilinear_starts(X, loss):
    yield np.linalg.lstsq(_bilinear_design(X), np.log(loss), rcond=None)[0]  # least squares


@dataclass(frozen=True)
class _Form:
    log_model: LogModel  # (theta, columns (log N, log(1 + M))) -> log loss and its Jacobian
    starts: Callable[[np.ndarray, np.ndarray], Iterable]  # (X, loss) -> starting thetas
    params: Callable[[np.ndarray], dict[str, float]]  # theta -> reported parameters


FORMS = {
    "additive": _Form(two_term_log_loss, _additive_starts, lambda t: {
        "E": np.exp(t[2]), "A": np.exp(t[0]), "alpha": t[3], "B": np.exp(t[1]), "gamma": t[4]}),
    "effective": _Form(_effective_log_loss, _effective_starts, lambda t: {
        "E": np.exp(t[1]), "A": np.exp(t[0]), "alpha": t[2], "gamma": t[3]}),
    "bilinear": _Form(_bilinear_log_loss, _bilinear_starts, lambda t: dict(zip("abcd", t))),
}


def _covariates(n_active, memory) -> np.ndarray:
    n, m = (v.ravel() for v in np.broadcast_arrays(np.asarray(n_active, dtype=float),
                                                   np.asarray(memory, dtype=float)))
    if not (np.all(n > 0) and np.all(m >= 0)):
        raise ValueError("n_active must be positive and memory non-negative")
    return np.column_stack([np.log(n), np.log1p(m)])


@dataclass(frozen=True, kw_only=True)
class JointFit(BootstrapFit):
    """One form fitted to (N, M, loss); `params` holds its parameters by name."""

    form: str
    params: dict[str, float]
    theta: tuple[float, ...] = field(repr=False)  # the parameters in the optimiser's coordinates

    def predict(self, n_active, memory) -> np.ndarray:
        log_loss, _ = FORMS[self.form].log_model(np.array(self.theta),
                                                 _covariates(n_active, memory))
        return np.exp(log_loss)


def _joint_fit(form: str, estimate: Estimate, refits: Sequence[Estimate] = ()) -> JointFit:
    params = {name: float(v) for name, v in FORMS[form].params(estimate.theta).items()}
    return JointFit(form=form, params=params, theta=tuple(map(float, estimate.theta)),
                    objective=estimate.objective, n_iter=estimate.n_iter,
                    bootstrap_fits=tuple(_joint_fit(form, r) for r in refits))


def fit_joint(form: str, n_active, memory, loss, *, delta: float = HUBER_DELTA,
              bootstrap: int = 0, seed: int = 0) -> JointFit:
    """Fit one of FORMS to losses of models with N = n_active and M = memory (slots)."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; one of {sorted(FORMS)}")
    X = _covariates(n_active, memory)
    loss = np.asarray(loss, dtype=float).ravel()
    if loss.shape != (len(X),) or not np.all(loss > 0):
        raise ValueError("loss must be positive, one value per (n_active, memory) pair")
    point, refits = fit_huber_log(FORMS[form].log_model, list(FORMS[form].starts(X, loss)), X,
                                  loss, delta=delta, bootstrap=bootstrap, seed=seed)
    return _joint_fit(form, point, refits)


@dataclass(frozen=True, eq=False)
class HeldoutError:
    """A form fitted on the kept rows and scored on the held-out rows, in loss units."""

    form: str
    fit: JointFit
    predicted: np.ndarray
    observed: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        """Per held-out point: predicted - observed loss."""
        return self.predicted - self.observed

    @property
    def mae(self) -> float:
        return float(np.mean(np.abs(self.errors)))

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean(self.errors**2)))


def heldout_error(form: str, n_active, memory, loss, holdout, *,
                  delta: float = HUBER_DELTA) -> HeldoutError:
    """Fit `form` on the rows where `holdout` (a boolean mask) is False, predict the others."""
    n, m, loss = (np.asarray(v, dtype=float).ravel() for v in (n_active, memory, loss))
    holdout = np.asarray(holdout, dtype=bool).ravel()
    if not holdout.any() or holdout.all():
        raise ValueError("holdout must mark some rows, and leave some to fit on")
    fit = fit_joint(form, n[~holdout], m[~holdout], loss[~holdout], delta=delta)
    return HeldoutError(form, fit, fit.predict(n[holdout], m[holdout]), loss[holdout])


def compare_forms(n_active, memory, loss, holdout, *, forms: Sequence[str] = tuple(FORMS),
                  delta: float = HUBER_DELTA) -> list[HeldoutError]:
    """Held-out error of each form, best (lowest RMSE) first."""
    scores = [heldout_error(f, n_active, memory, loss, holdout, delta=delta) for f in forms]
    return sorted(scores, key=lambda score: score.rmse)
