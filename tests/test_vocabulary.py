"""Vocabulary as an axis (movelab.scaling.vocabulary, results/vocab-prose/PLAN.md and its
amendment) on synthetic sweeps whose answers are known by construction: H2's slope is
recovered with its interval, a gain that does not depend on occurrences is not called a trend
(and keeps its nominal false-positive rate, which the first registered fit did not), and the
figure states the verdict it draws."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from movelab.scaling.figures import fig_vocabulary
from movelab.scaling.vocabulary import (occurrence_slope, slot_slopes_by_vocabulary,
                                        vocabulary_cells, vocabulary_gains)

TOKENS = 3_670_016
VOCABS = (1024, 4096, 16384)
SEED_OFFSETS = {0: 0.0, 1: 0.015}  # shared by every run of a seed at a V (same batches)
MOVE_SEED_OFFSETS = {0: 0.0, 1: -0.004}  # MoVE's own seed effect: the gain has one too
SLOTS = {"MoVE x1": 2, "MoVE x4": 8, "MoVE x16": 32}  # d4: M = k L / 2


def vocab_sweep(slope: float, per_doubling: float = 0.01, base_gain: float = 0.02,
                noise: float = 0.0, standard_noise: float | None = None, rng=0,
                missing_standard=(), move_seed_effect: bool = True):
    """Standard at each V and seed (BPB 2.0 + a V effect + the seed's offset) and MoVE x1, x4,
    x16 below it by gain = base_gain + per_doubling log2(M / 2) + slope log2(TOKENS / V) + MoVE's
    seed effect; rows shuffled (nothing may depend on their order)."""
    rng = np.random.default_rng(rng)
    standard_noise = noise if standard_noise is None else standard_noise
    rows = []
    for vocab in VOCABS:
        for seed, offset in SEED_OFFSETS.items():
            base = 2.0 + 0.01 * np.log2(vocab / 1024) + offset
            if (vocab, seed) not in missing_standard:
                rows.append({"vocab_size": vocab, "seed": seed, "value_path": "standard",
                             "path_label": "standard", "slots": 0, "tokens_seen": TOKENS,
                             "val_bpb": base + rng.normal(0, standard_noise) if standard_noise else base})
            for label, m in SLOTS.items():
                gain = (base_gain + per_doubling * np.log2(m / 2) + slope * np.log2(TOKENS / vocab)
                        - MOVE_SEED_OFFSETS[seed] * move_seed_effect)
                rows.append({"vocab_size": vocab, "seed": seed, "value_path": "move",
                             "path_label": label, "slots": m, "tokens_seen": TOKENS,
                             "val_bpb": base - gain + (rng.normal(0, noise) if noise else 0.0)})
    df = pd.DataFrame(rows).sample(frac=1, random_state=1).reset_index(drop=True)
    return df.assign(run_id=[f"r{i:03d}" for i in range(len(df))], depth=4)


def test_gains_are_paired_by_vocabulary_and_seed():
    gains = vocabulary_gains(vocab_sweep(slope=0.004))
    assert len(gains) == len(VOCABS) * len(SEED_OFFSETS) * len(SLOTS)
    row = gains[(gains["vocab_size"] == 4096) & (gains["path_label"] == "MoVE x4")
                & (gains["seed"] == 1)].iloc[0]
    assert row["gain"] == pytest.approx(0.02 + 0.01 * 2 + 0.004 * np.log2(TOKENS / 4096) + 0.004)
    assert row["tokens_per_id"] == pytest.approx(TOKENS / 4096)
    partial = vocabulary_gains(vocab_sweep(slope=0.004, missing_standard=[(16384, 1)]))
    assert len(partial) == len(gains) - len(SLOTS)  # no standard run there: no gains there


def test_the_amended_h2_fit_is_the_seed_effect_regression_of_the_mean_gains():
    """Unbalanced (one (V, seed) without its standard run), so the seed effect matters: slope,
    standard error and interval equal a least-squares fit written out here."""
    gains = vocabulary_gains(vocab_sweep(slope=0.004, noise=0.002, missing_standard=[(16384, 1)]))
    fit = occurrence_slope(gains)
    means = gains.groupby(["vocab_size", "seed"], as_index=False)[["log2_tokens_per_id", "gain"]].mean()
    x = np.column_stack([means["log2_tokens_per_id"], np.ones(len(means)), means["seed"] == 1])
    beta = np.linalg.solve(x.T @ x, x.T @ means["gain"])
    dof = len(means) - 3
    sigma2 = float(((means["gain"] - x @ beta) ** 2).sum()) / dof
    se = np.sqrt(sigma2 * np.linalg.inv(x.T @ x)[0, 0])
    assert (fit["n"], fit["dof"]) == (5, 2)
    assert fit["slope"] == pytest.approx(beta[0]) and fit["se"] == pytest.approx(se)
    assert fit["high"] - fit["slope"] == pytest.approx(stats.t.ppf(0.975, dof) * se)


def test_the_occurrence_slope_is_recovered_and_called_supported():
    exact = occurrence_slope(vocabulary_gains(vocab_sweep(slope=0.004)))
    assert exact["slope"] == pytest.approx(0.004) and (exact["n"], exact["dof"]) == (6, 3)
    first = occurrence_slope(vocabulary_gains(vocab_sweep(slope=0.004)), per_gain=True)
    assert first["slope"] == pytest.approx(0.004) and (first["n"], first["dof"]) == (18, 13)
    noisy = occurrence_slope(vocabulary_gains(vocab_sweep(slope=0.004, noise=0.0005)))
    assert noisy["low"] > 0 and noisy["verdict"].startswith("supported")
    assert 0 < noisy["detectable"] < 0.004


def test_no_trend_is_unresolved_or_refuted_never_supported():
    flat = occurrence_slope(vocabulary_gains(vocab_sweep(slope=0.0, noise=0.002)))
    assert flat["low"] < 0 < flat["high"] and flat["verdict"].startswith("unresolved")
    assert f"detectable {flat['detectable']:.4f}" in flat["verdict"]
    falling = occurrence_slope(vocabulary_gains(vocab_sweep(slope=-0.004, noise=0.0005)))
    assert falling["high"] < 0 and falling["verdict"].startswith("refuted")


def test_the_amended_fit_keeps_its_false_positive_rate_where_the_first_did_not():
    """No trend, noise mostly in the standard runs (each shared by the three gains of its
    (V, seed)): the amended fit rejects about 5% of the time, the first registered far more."""
    rejected = {False: 0, True: 0}
    for repeat in range(300):
        gains = vocabulary_gains(vocab_sweep(slope=0.0, noise=0.0005, standard_noise=0.004,
                                             rng=repeat))
        for per_gain in rejected:
            fit = occurrence_slope(gains, per_gain=per_gain)
            rejected[per_gain] += fit["low"] > 0 or fit["high"] < 0
    assert rejected[False] / 300 < 0.09 and rejected[True] / 300 > 0.2


def test_what_the_rows_cannot_identify_is_not_assessable():
    gains = vocabulary_gains(vocab_sweep(slope=0.004, noise=0.001))
    one_vocab = gains[gains["vocab_size"] == 4096]
    assert occurrence_slope(one_vocab)["verdict"].startswith("not assessable")
    # each size at its own vocabulary: the occurrences are the sizes' intercepts
    confounded = gains[[(v, k) in {(1024, "MoVE x1"), (4096, "MoVE x4"), (16384, "MoVE x16")}
                        for v, k in zip(gains["vocab_size"], gains["path_label"])]]
    assert occurrence_slope(confounded, per_gain=True)["verdict"].startswith("not assessable")
    broken = gains.copy()
    broken.loc[0, "gain"] = np.nan
    assert "1 gains are NaN" in occurrence_slope(broken)["verdict"]
    twice = vocab_sweep(slope=0.004)
    with pytest.raises(ValueError, match="more than one run"):
        vocabulary_gains(pd.concat([twice, twice.iloc[:1].assign(run_id="again")]))


def test_cells_test_each_gain_and_say_better_worse_or_a_lead():
    better = vocabulary_cells(vocab_sweep(slope=0.0, noise=1e-6, move_seed_effect=False))
    assert len(better) == 9 and set(better["n"]) == {"2"} and set(better["holm_m"]) == {9}
    assert set(better["verdict"]) == {"MoVE better"}
    x16 = better[better["path_label"] == "MoVE x16"]
    assert x16["gain"].to_numpy() == pytest.approx([0.02 + 0.01 * 4] * 3, abs=1e-5)
    order = np.argsort(better["p"].to_numpy())
    expected = np.maximum.accumulate(np.minimum(1, better["p"].to_numpy()[order] * np.arange(9, 0, -1)))
    assert better["p_holm"].to_numpy()[order] == pytest.approx(expected)
    worse = vocabulary_cells(vocab_sweep(slope=0.0, per_doubling=0.0, base_gain=-0.05, noise=1e-6,
                                         move_seed_effect=False))
    assert set(worse["verdict"]) == {"MoVE worse"}
    one_seed = vocabulary_cells(vocab_sweep(slope=0.0).query("seed == 0"))
    assert set(one_seed["test"]) == {"one seed"} and set(one_seed["verdict"]) == {"a lead: one seed"}
    assert one_seed["gain"].notna().all() and one_seed["low"].isna().all()


def test_slot_slopes_at_each_vocabulary():
    table = slot_slopes_by_vocabulary(vocab_sweep(slope=0.004, per_doubling=0.01))
    assert list(table["vocab_size"]) == list(VOCABS)
    assert table["gain_per_doubling"].to_numpy() == pytest.approx([0.01] * 3)
    assert set(table["dof"]) == {6 - 2 - 1}


def test_the_vocabulary_figure_states_the_verdict_it_draws():
    from test_figures import reader_defects

    fig = fig_vocabulary(vocab_sweep(slope=0.004, noise=0.0005), title="synthetic")
    assert "H2 supported" in fig._suptitle.get_text() and "6 (V, seed) gains" in fig._suptitle.get_text()
    assert reader_defects(fig) == []
    waiting = fig_vocabulary(vocab_sweep(slope=0.004, noise=0.0005, missing_standard=[(16384, 0),
                                                                                      (16384, 1)]))
    assert reader_defects(waiting) == []  # a vocabulary whose standard runs are not in yet
    empty = fig_vocabulary(vocab_sweep(slope=0.0).iloc[0:0], title="none")
    assert "not assessable" in empty._suptitle.get_text()


def test_two_seed_intervals_do_not_set_the_gain_axis():
    """With two seeds a cell's 95% t interval is 12.7 standard errors wide: the gain panel spans
    the gains drawn, and an interval beyond it ends in an arrow at the edge."""
    df = vocab_sweep(slope=0.004, noise=0.01, standard_noise=0.002)
    fig = fig_vocabulary(df)
    ax = fig.axes[0]
    gains = vocabulary_gains(df)["gain"]
    bottom, top = ax.get_ylim()
    assert bottom < min(gains.min(), 0) and top > gains.max()
    assert top - bottom < 2 * (gains.max() - min(gains.min(), 0))  # not the intervals' span
    cells = vocabulary_cells(df)
    assert (cells["high"] > top).any()  # the case the arrows are for
    arrows = [line for line in ax.get_lines() if line.get_marker() in ("^", "v")
              and len(line.get_ydata()) == 1]
    assert len(arrows) == (cells["high"] > top).sum() + (cells["low"] < bottom).sum()
