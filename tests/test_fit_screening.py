"""Screening a grid of starts: the log models evaluated for a batch of thetas at once equal
the one-theta evaluation, and the screened fit finds the full grid's optimum."""

import itertools
from unittest import mock

import numpy as np
import pytest

from movelab.scaling import fit

GRID = {"a": (0.0, 5.0, 10.0), "b": (0.0, 5.0, 10.0), "e": (-1.0, 0.0, 1.0),
        "alpha": (0.0, 0.5, 1.0), "beta": (0.0, 0.5, 1.0)}


@pytest.fixture(scope="module")
def noisy_chinchilla_points():
    rng = np.random.default_rng(3)
    n = np.repeat(np.logspace(7, 10, 6), 5)
    d = n * np.tile(np.logspace(0, 2, 5), 6)
    loss = (1.8 + 400 / n**0.34 + 2000 / d**0.37) * np.exp(rng.normal(0, 0.01, n.size))
    return n, d, loss


@pytest.mark.parametrize("log_model, thetas, X", [
    (fit.two_term_log_loss, np.random.default_rng(0).normal(1, 0.5, (7, 5)),
     np.random.default_rng(1).normal(15, 3, (11, 2))),
    (fit._power_law_log_loss, np.abs(np.random.default_rng(2).normal(1, 0.5, (7, 3))),
     np.random.default_rng(3).normal(15, 3, (11, 1))),
])
def test_batched_log_model_equals_one_theta_at_a_time(log_model, thetas, X):
    predicted, jacobian = log_model(thetas, X)
    assert predicted.shape == (7, 11) and jacobian.shape == (7, 11, thetas.shape[1])
    for k, theta in enumerate(thetas):
        one_predicted, one_jacobian = log_model(theta, X)
        np.testing.assert_allclose(predicted[k], one_predicted, rtol=1e-12)
        np.testing.assert_allclose(jacobian[k], one_jacobian, rtol=1e-12)


def test_screening_keeps_the_lowest_objectives_best_first(noisy_chinchilla_points):
    n, d, loss = noisy_chinchilla_points
    X, log_loss = np.column_stack([np.log(n), np.log(d)]), np.log(loss)
    starts = np.array(list(itertools.product(*GRID.values())))
    starts[0] = np.nan  # a start whose objective is not finite ranks last
    kept = fit.screen_starts(fit.two_term_log_loss, starts, X, log_loss, 1e-3, keep=10)
    objective = [fit.huber(1e-3, fit.two_term_log_loss(s, X)[0] - log_loss).sum() for s in starts]
    ranked = np.argsort(np.where(np.isfinite(objective), objective, np.inf), kind="stable")
    np.testing.assert_array_equal(kept, starts[ranked[:10]])
    assert len(fit.screen_starts(fit.two_term_log_loss, starts[:5], X, log_loss, 1e-3,
                                 keep=10)) == 5


def test_screened_fit_finds_the_full_grids_optimum(noisy_chinchilla_points):
    with mock.patch.object(fit, "SCREEN_KEEP", 8):
        screened = fit.fit_chinchilla(*noisy_chinchilla_points, start_grid=GRID)
    with mock.patch.object(fit, "SCREEN_KEEP", 10**6):
        full = fit.fit_chinchilla(*noisy_chinchilla_points, start_grid=GRID)
    for name, value in full.params.items():
        assert screened.params[name] == pytest.approx(value, rel=1e-4), name
