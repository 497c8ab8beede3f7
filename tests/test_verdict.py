"""The pre-registered decoupling verdict (movelab.scaling.verdict) on synthetic sweeps whose
answer is known by construction: a sweep built to satisfy every criterion is claimed, a sweep
with memory that does nothing is not, and each criterion fails where its own condition fails."""

import numpy as np
import pandas as pd
import pytest

from movelab.scaling.figures import fig_decoupling
from movelab.scaling.verdict import (CRITERIA, arm_rows, claimed, decoupling_verdict,
                                    slot_gain_table)
from test_scaling_analysis import N_ACTIVE, dense_law, runs

SEED_OFFSETS = {0: 0.0, 1: 0.01, 2: -0.006}  # shared by every variant of a seed (same batches)


def sweep(slope: float, gain16: dict, noise: float = 0.002, rng_seed: int = 0,
          arm: str | None = None) -> pd.DataFrame:
    """Standard runs on dense_law at d2-d8 (seed 0) and, at d4 and d6 with seeds 0-2, standard,
    standard +g0 (= standard) and MoVE x1-x16 whose BPB falls by `slope` per doubling of slots
    from the standard value, so that x16 is `gain16[depth]` below it (x1 starts higher by the
    rest). With `arm`, the MoVE runs are labelled "<variant> <arm>" instead."""
    rng = np.random.default_rng(rng_seed)
    records = [{"variant": "standard", "depth": d, "val_bpb": dense_law(N_ACTIVE[d]),
                "groups": "grid"} for d in (2, 8)]
    for depth in (4, 6):
        base = dense_law(N_ACTIVE[depth])
        for s, offset in SEED_OFFSETS.items():
            group = "grid" if s == 0 else "seeds"
            for variant in ("standard", "standard +g0"):
                records.append({"variant": variant, "depth": depth, "seed": s, "groups": group,
                                "val_bpb": base + offset + rng.normal(0, noise)})
            for k in (1, 2, 4, 8, 16):
                m = k * depth // 2
                bpb = base - gain16[depth] + slope * np.log2(16 / k)
                name = f"move x{k}" + (f" {arm}" if arm else "")
                records.append({"variant": name, "depth": depth, "slots": m, "seed": s,
                                "groups": group, "val_bpb": bpb + offset + rng.normal(0, noise)})
    return runs(records)


def verdict_of(df):
    table = decoupling_verdict(df, bootstrap=100)
    assert list(table["criterion"]) == list(CRITERIA)
    return table.set_index("criterion")


def test_a_sweep_built_to_decouple_is_claimed_with_its_numbers():
    table = verdict_of(sweep(slope=0.02, gain16={4: 0.05, 6: 0.08}))
    assert table["holds"].tolist() == [True, True, True, True]
    assert table.loc["slot slope", "estimate"] == pytest.approx(0.02, abs=0.002)
    assert table.loc["depth", "estimate"] == pytest.approx(0.03, abs=0.005)
    assert table.loc["exchange rate", "low"] > 0
    assert claimed(table.reset_index())


def test_memory_that_does_nothing_is_not_claimed_and_says_which_criteria_fail():
    table = verdict_of(sweep(slope=0.0, gain16={4: 0.0, 6: 0.0}))
    assert table.loc["slot slope", "low"] < 0 < table.loc["slot slope", "high"]
    assert table.loc["slot slope", "holds"] is False
    assert table.loc["beyond noise", "holds"] is False
    assert table.loc["exchange rate", "holds"] is False
    assert not claimed(table.reset_index())


def test_each_criterion_fails_on_its_own_condition():
    shrinking = verdict_of(sweep(slope=0.02, gain16={4: 0.08, 6: 0.04}))
    assert shrinking.loc["depth", "holds"] is False  # the gain falls with depth
    assert shrinking.loc["slot slope", "holds"] and shrinking.loc["beyond noise", "holds"]
    noisy = verdict_of(sweep(slope=0.02, gain16={4: 0.01, 6: 0.012}, noise=0.02, rng_seed=3))
    assert noisy.loc["beyond noise", "holds"] is False  # 0.01 is within 3 se of noise 0.02


def test_criteria_the_rows_cannot_assess_hold_neither_way():
    df = sweep(slope=0.02, gain16={4: 0.05, 6: 0.08})
    shallow = df[df["depth"].isin((4, 6))]  # no standard at d2 and d8: 2 depths, no dense law
    table = verdict_of(shallow)
    assert table.loc["exchange rate", "holds"] is None
    assert "not assessable" in table.loc["exchange rate", "detail"]
    assert not claimed(table.reset_index())
    half_done = verdict_of(df[df["depth"] != 6])  # a stage missing: nothing is judged on d4 alone
    assert half_done.loc["slot slope", "holds"] is None
    assert "under 2 MoVE slot counts at d6" in half_done.loc["slot slope", "detail"]
    only_x1 = verdict_of(df[~((df["depth"] == 6) & (df["path_label"] != "MoVE x1")
                              & (df["value_path"] == "move"))])  # d6: one slot count, no slope
    assert only_x1.loc["slot slope", "holds"] is None
    assert "under 2 MoVE slot counts at d6" in only_x1.loc["slot slope", "detail"]
    assert half_done.loc["depth", "holds"] is None and half_done.loc["beyond noise", "holds"] is None
    # d6's x16 at one seed (a sweep midway): its gain there is one pair, a lead, not a seed mean
    one_seed = df[~((df["depth"] == 6) & (df["path_label"] == "MoVE x16") & (df["seed"] > 0))]
    lead = verdict_of(one_seed)
    assert lead.loc["depth", "holds"] is None and np.isfinite(lead.loc["depth", "estimate"])
    assert "n 1" in lead.loc["depth", "detail"] and "not assessable" in lead.loc["depth", "detail"]
    no_x16 = verdict_of(df[~((df["depth"] == 6) & (df["path_label"] == "MoVE x16"))])
    assert no_x16.loc["exchange rate", "holds"] is None  # the dense law is there, the cell is not
    assert no_x16.loc["exchange rate", "detail"] == "not assessable: no MoVE x16 at d6"


def test_a_second_arm_is_judged_in_place_of_the_papers_memory_rows():
    paper = sweep(slope=0.0, gain16={4: 0.0, 6: 0.0})
    arm = sweep(slope=0.02, gain16={4: 0.05, 6: 0.08}, arm="symbreak")
    arm = arm[arm["value_path"] == "move"].assign(role="control")
    both = pd.concat([paper, arm], ignore_index=True)
    assert not claimed(decoupling_verdict(both, bootstrap=50))  # the paper's rows decide
    judged = arm_rows(both, "symbreak")
    assert set(judged.query("value_path == 'move'")["path_label"]) == {
        "MoVE x1", "MoVE x2", "MoVE x4", "MoVE x8", "MoVE x16"}
    assert claimed(decoupling_verdict(judged, bootstrap=50))
    with pytest.raises(ValueError, match="no run of arm"):
        arm_rows(paper, "symbreak")


def test_slot_gain_table_pairs_each_arm_with_the_baseline_by_seed():
    paper = sweep(slope=0.02, gain16={4: 0.05, 6: 0.08}, noise=0.0)
    arm = sweep(slope=0.0, gain16={4: 0.03, 6: 0.03}, noise=0.0, arm="symbreak")
    both = pd.concat([paper, arm[arm["value_path"] == "move"].assign(role="control")],
                     ignore_index=True)
    table = slot_gain_table(both, arms=("paper", "symbreak")).set_index(["arm", "depth", "slots"])
    assert len(table) == 2 * 2 * 5 and (table["n"] == 3).all()
    # without noise the shared seed offsets cancel: each gain is the constructed one exactly
    assert table.loc[("paper", 6, 48), "gain"] == pytest.approx(0.08)
    assert table.loc[("paper", 4, 2), "gain"] == pytest.approx(0.05 - 0.02 * 4)
    assert table.loc[("symbreak", 4, 32), "gain"] == pytest.approx(0.03)
    assert table.loc[("paper", 6, 48), "per_seed"] == pytest.approx({0: 0.08, 1: 0.08, 2: 0.08})


def test_the_decoupling_figure_states_the_verdict_it_draws():
    from test_figures import reader_defects

    built = fig_decoupling(sweep(slope=0.02, gain16={4: 0.05, 6: 0.08}), bootstrap=20)
    assert "paper recipe: 4 of 4 criteria hold; the claim is made" in built._suptitle.get_text()
    assert reader_defects(built) == []
    null = fig_decoupling(sweep(slope=0.0, gain16={4: 0.0, 6: 0.0}), bootstrap=20)
    assert null._suptitle.get_text().endswith("no claim")
    assert "4 of 4" not in null._suptitle.get_text()


def test_a_cell_with_one_seed_gets_its_own_gain_without_an_interval():
    one_seed = sweep(slope=0.02, gain16={4: 0.05, 6: 0.08}, noise=0.0).query("seed == 0")
    table = slot_gain_table(one_seed).set_index(["depth", "slots"])
    assert (table["n"] == 1).all() and table["low"].isna().all()
    assert table.loc[(6, 48), "gain"] == pytest.approx(0.08)


def test_the_slot_axes_are_ticked_at_the_slot_counts_drawn():
    figure = fig_decoupling(sweep(slope=0.02, gain16={4: 0.05, 6: 0.08}), bootstrap=20)
    slot_axes = {ax.get_title(): ax for ax in figure.axes if ax.get_xlabel() == "MoVE slots M"}
    by_depth = {4: [2, 4, 8, 16, 32], 6: [3, 6, 12, 24, 48]}  # d6's fall between powers of 2
    for title, ax in slot_axes.items():
        depth = 4 if title.startswith("depth 4") else 6
        assert list(ax.get_xticks()) == by_depth[depth], title
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(m) for m in by_depth[depth]]
    assert len(slot_axes) == 4


def test_a_depth_whose_memory_cells_lag_its_seeds_says_so_in_its_title():
    # a sweep midway: d6 standard and +g0 at 3 seeds, its MoVE cells at seed 0 only
    df = sweep(slope=0.02, gain16={4: 0.05, 6: 0.08})
    midway = df[~((df["depth"] == 6) & (df["value_path"] == "move") & (df["seed"] > 0))]
    titles = {ax.get_title() for ax in fig_decoupling(midway, bootstrap=20).axes}
    assert "depth 4 (3 seeds)" in titles
    assert "depth 6 (MoVE 1 seed a slot count, 3 in all)" in titles
