"""Vocabulary as an axis (movelab.scaling.vocabulary, results/vocab-prose/PLAN.md) on synthetic
sweeps whose answers are known by construction: H2's slope is recovered, a gain that does not
depend on occurrences is not called a trend, and the figure states the verdict it draws."""

import numpy as np
import pandas as pd
import pytest

from movelab.scaling.figures import fig_vocabulary
from movelab.scaling.vocabulary import (occurrence_slope, slot_slopes_by_vocabulary,
                                        vocabulary_cells, vocabulary_gains)

TOKENS = 3_670_016
VOCABS = (1024, 4096, 16384)
SEED_OFFSETS = {0: 0.0, 1: 0.015}
SLOTS = {"MoVE x1": 2, "MoVE x4": 8, "MoVE x16": 32}  # d4: M = k L / 2


def vocab_sweep(slope: float, per_doubling: float = 0.01, noise: float = 0.0, rng_seed: int = 0,
                missing_standard=()):
    """Standard at each V and seed (BPB 2.0 + a V effect + the seed's offset) and MoVE x1, x4,
    x16 below it by gain = 0.02 + per_doubling log2(M / 2) + slope log2(TOKENS / V)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for vocab in VOCABS:
        for seed, offset in SEED_OFFSETS.items():
            base = 2.0 + 0.01 * np.log2(vocab / 1024) + offset
            if (vocab, seed) not in missing_standard:
                rows.append({"vocab_size": vocab, "seed": seed, "value_path": "standard",
                             "path_label": "standard", "slots": 0, "tokens_seen": TOKENS,
                             "val_bpb": base + rng.normal(0, noise)})
            for label, m in SLOTS.items():
                gain = 0.02 + per_doubling * np.log2(m / 2) + slope * np.log2(TOKENS / vocab)
                rows.append({"vocab_size": vocab, "seed": seed, "value_path": "move",
                             "path_label": label, "slots": m, "tokens_seen": TOKENS,
                             "val_bpb": base - gain + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_gains_are_paired_by_vocabulary_and_seed():
    df = vocab_sweep(slope=0.004)
    gains = vocabulary_gains(df)
    assert len(gains) == len(VOCABS) * len(SEED_OFFSETS) * len(SLOTS)
    row = gains[(gains["vocab_size"] == 4096) & (gains["path_label"] == "MoVE x4")].iloc[0]
    assert row["gain"] == pytest.approx(0.02 + 0.01 * 2 + 0.004 * np.log2(TOKENS / 4096))
    assert row["tokens_per_id"] == pytest.approx(TOKENS / 4096)
    # a vocabulary and seed without its standard run contribute no gain
    partial = vocabulary_gains(vocab_sweep(slope=0.004, missing_standard=[(16384, 1)]))
    assert len(partial) == len(gains) - len(SLOTS)
    assert not ((partial["vocab_size"] == 16384) & (partial["seed"] == 1)).any()


def test_the_occurrence_slope_is_recovered_and_called_supported():
    exact = occurrence_slope(vocabulary_gains(vocab_sweep(slope=0.004)))
    assert exact["slope"] == pytest.approx(0.004) and exact["n"] == 18
    assert exact["dof"] == 18 - 5  # slope, 3 size intercepts, 1 seed effect
    noisy = occurrence_slope(vocabulary_gains(vocab_sweep(slope=0.004, noise=0.002)))
    assert noisy["low"] > 0 and noisy["verdict"].startswith("supported")
    assert noisy["low"] < 0.004 < noisy["high"]
    assert 0 < noisy["detectable"] < 0.004


def test_a_gain_without_a_trend_is_unresolved_not_refuted():
    flat = occurrence_slope(vocabulary_gains(vocab_sweep(slope=0.0, noise=0.002)))
    assert flat["low"] < 0 < flat["high"] and flat["verdict"].startswith("unresolved")
    falling = occurrence_slope(vocabulary_gains(vocab_sweep(slope=-0.004, noise=0.002)))
    assert falling["high"] < 0 and falling["verdict"].startswith("refuted")
    one_vocab = vocabulary_gains(vocab_sweep(slope=0.004)).query("vocab_size == 4096")
    assert occurrence_slope(one_vocab)["verdict"].startswith("not assessable")


def test_cells_test_each_gain_and_holm_over_the_nine():
    cells = vocabulary_cells(vocab_sweep(slope=0.0, noise=0.002))
    assert len(cells) == 9 and set(cells["n"]) == {"2"} and set(cells["test"]) == {"paired t"}
    x16 = cells[cells["path_label"] == "MoVE x16"]
    assert x16["gain"].to_numpy() == pytest.approx([0.02 + 0.01 * 4] * 3, abs=0.006)
    assert (cells["p_holm"] >= cells["p"]).all()
    order = np.argsort(cells["p"].to_numpy())
    factors = np.arange(9, 0, -1)
    expected = np.maximum.accumulate(np.minimum(1, cells["p"].to_numpy()[order] * factors))
    assert cells["p_holm"].to_numpy()[order] == pytest.approx(expected)
    assert set(cells["verdict"]) <= {"MoVE better", "unresolved"}


def test_slot_slopes_at_each_vocabulary():
    table = slot_slopes_by_vocabulary(vocab_sweep(slope=0.004, per_doubling=0.01))
    assert list(table["vocab_size"]) == list(VOCABS)
    assert table["gain_per_doubling"].to_numpy() == pytest.approx([0.01] * 3)
    assert set(table["dof"]) == {6 - 2 - 1}


def test_the_vocabulary_figure_states_the_verdict_it_draws():
    from test_figures import reader_defects

    fig = fig_vocabulary(vocab_sweep(slope=0.004, noise=0.002), title="synthetic")
    assert "H2 supported" in fig._suptitle.get_text()
    assert reader_defects(fig) == []
    empty = fig_vocabulary(vocab_sweep(slope=0.0).iloc[0:0], title="none")
    assert "not assessable" in empty._suptitle.get_text()
