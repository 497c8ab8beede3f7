"""Joint laws of loss in active parameters N and memory slots M: each form recovers its own
parameters, and held-out extrapolation to the largest N picks the form that made the data."""

import numpy as np
import pytest

from movelab.scaling import FORMS, compare_forms, fit_joint, heldout_error

TRUTH = {
    "additive": {"E": 0.9, "A": 30.0, "alpha": 0.3, "B": 0.25, "gamma": 0.5},
    "effective": {"E": 0.9, "A": 30.0, "alpha": 0.3, "gamma": 0.1},
    "bilinear": {"a": -0.05, "b": -0.1, "c": 0.004, "d": 1.2},
}


def law(form, n, m):
    p = TRUTH[form]
    if form == "additive":
        return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / (1 + m) ** p["gamma"]
    if form == "effective":
        return p["E"] + p["A"] / (n ** p["alpha"] * (1 + m) ** p["gamma"])
    log_n, log_m = np.log(n), np.log1p(m)
    return np.exp(p["a"] * log_n + p["b"] * log_m + p["c"] * log_n * log_m + p["d"])


@pytest.fixture(scope="module")
def ladder():
    """Six model sizes (depths) crossed with dense and six bank sizes."""
    n, m = np.meshgrid(np.geomspace(1e6, 1e8, 6), [0, 1, 2, 4, 8, 16, 32])
    return n.ravel(), m.ravel().astype(float)


def test_forms_are_the_documented_three():
    assert set(FORMS) == set(TRUTH)


@pytest.mark.parametrize("form", sorted(TRUTH))
def test_each_form_recovers_its_parameters_exactly_without_noise(form, ladder):
    fit = fit_joint(form, *ladder, law(form, *ladder))
    assert fit.form == form
    assert fit.params == pytest.approx(TRUTH[form], rel=1e-5)
    n, m = 3e8, np.array([0.0, 64.0])  # beyond the ladder
    assert fit.predict(n, m) == pytest.approx(law(form, n, m), rel=1e-6)


@pytest.mark.parametrize("form", sorted(TRUTH))
def test_heldout_deepest_rows_pick_the_true_form(form, ladder):
    n, m = ladder
    noise = np.exp(np.random.default_rng(0).normal(0.0, 0.002, n.size))
    deepest = n == n.max()
    ranked = compare_forms(n, m, law(form, n, m) * noise, deepest)
    assert [score.form for score in ranked][0] == form
    best, *others = ranked
    assert all(best.rmse < 0.5 * other.rmse for other in others)
    assert best.rmse < 0.01  # loss units; noise is 0.2% of a loss near 1.2


def test_heldout_error_reports_per_point_errors_on_held_out_rows_only(ladder):
    n, m = ladder
    loss = law("additive", n, m)
    deepest = n == n.max()
    loss[deepest] += 0.05  # the held-out rows are worse than the law says
    score = heldout_error("additive", n, m, loss, deepest)
    assert score.errors.shape == (deepest.sum(),)
    assert score.errors == pytest.approx(-0.05, abs=1e-6)  # the fit never saw the shift
    assert score.mae == pytest.approx(0.05, abs=1e-6)
    assert score.rmse == pytest.approx(0.05, abs=1e-6)


def test_joint_fit_bootstrap_gives_intervals_near_the_truth(ladder):
    n, m = ladder
    noise = np.exp(np.random.default_rng(1).normal(0.0, 0.002, n.size))
    fit = fit_joint("effective", n, m, law("effective", n, m) * noise, bootstrap=30)
    for name, truth in TRUTH["effective"].items():
        low, high = fit.interval(name)
        width = high - low
        assert low < fit.params[name] < high, name
        assert width > 1e-3 * abs(truth), name  # the refits moved
        assert low - width < truth < high + width, name


def test_rejects_unknown_forms_and_empty_holdouts(ladder):
    n, m = ladder
    with pytest.raises(ValueError, match="unknown form"):
        fit_joint("quadratic", n, m, law("additive", n, m))
    with pytest.raises(ValueError, match="holdout"):
        heldout_error("additive", n, m, law("additive", n, m), np.zeros(n.size, dtype=bool))
