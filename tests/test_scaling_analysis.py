"""Sweep analysis on synthetic runs with answers known by construction: compute laws, BPB per
doubling of slots, seed noise, the dense exchange rate, joint-law selection, repetition, and
loading."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from movelab.accounting import ladder_records
from movelab.scaling.analysis import (accounting_table, blocked_slope, chinchilla_reproduction,
                                      compare_to_standard, exchange_rate, fit_compute_laws, holm,
                                      law_flags, paired_difference, pooled_slot_gain,
                                      published_chinchilla_fits, repetition_table, seed_noise,
                                      select_joint_law, slot_doubling_gains,
                                      slot_gains_over_training, smallest_detectable,
                                      synthetic_recovery)
from movelab.scaling.analysis import band_is_drawn
from movelab.scaling.fit import fit_power_law
from movelab.scaling.load import (find_reference_dir, find_results_dir, load_curves, load_runs,
                                  with_derived_columns)
from movelab.variant import display_name, variant_order

DEPTHS = (2, 4, 6, 8, 10)
N_ACTIVE = dict(zip(DEPTHS, (1e5, 3e5, 1e6, 3e6, 1e7)))


def runs(records) -> pd.DataFrame:
    """Rows as load_runs returns them, from dicts giving at least variant, depth and val_bpb;
    active params follow the depth (N_ACTIVE), FLOPs per token are 6N, tokens are N."""
    rows = []
    for record in records:
        n = N_ACTIVE[record["depth"]]
        rows.append({"groups": "grid", "slots": 0, "seed": 0, "gate_standard": False,
                     "density": np.nan, "params_memory": 0, "params_active": n,
                     "flops_per_token_train": 6 * n, "train_flops": 6 * n * n, **record})
    df = pd.DataFrame(rows)
    return with_derived_columns(df.assign(value_path=df["variant"].str.split().str[0]))


def dense_law(n):
    return 1.0 + 10.0 * np.asarray(n, dtype=float) ** -0.25


# --- loading --------------------------------------------------------------------------------

CSV = """run_id,groups,variant,label,value_path,depth,width,slots,density,gate_standard,seed,\
params_total,params_active,params_memory,flops_per_token_train,train_flops,val_bpb,git_commit
12345e6789,grid,standard,d2 standard,standard,2,32,0,,False,0,287008,155648,0,1130496,\
175959441408,2.79,0123456789
0b650125daf4,grid;seeds,move x4,d2 move x4 (M=4),move,2,32,4,4,True,1,811616,155968,524288,\
1132416,176078979072,2.74,abcdef
77c0ffee0000,controls,move x4 g0=1,d2 move x4 g0=1 (M=4),move,2,32,4,4,False,0,811552,\
155904,524288,1132032,176019210240,2.76,abcdef
"""


@pytest.fixture
def results_dir(tmp_path):
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "runs.csv").write_text(CSV)
    return tmp_path


def test_load_runs_types_columns_and_derives_labels_and_groups(results_dir):
    df = load_runs("mini", results_dir)
    assert list(df["run_id"]) == ["12345e6789", "0b650125daf4", "77c0ffee0000"]  # not 1.2e10
    assert df["git_commit"][0] == "0123456789"  # leading zero kept
    assert df["gate_standard"].dtype == bool and list(df["gate_standard"]) == [False, True, False]
    assert np.isnan(df["density"][0]) and df["density"][1] == 4.0
    assert df["depth"].dtype == np.int64 and df["train_flops"].dtype == np.int64
    assert list(df["path_label"]) == ["standard", "MoVE x4", "MoVE x4 g0=1"]
    assert list(df["role"]) == ["main", "main", "control"]  # derived from groups: no column
    assert list(df["memory_params"]) == [0, 524288, 524288]


def test_results_and_reference_are_found_from_the_current_directory_not_the_package(
        tmp_path, tmp_path_factory, monkeypatch):
    """A notebook runs in notebooks/: the nearest results/ above it is read, and reference/
    beside it; where no folder above has results/, ./results (and the error names it)."""
    (tmp_path / "results" / "mini").mkdir(parents=True)
    (tmp_path / "results" / "mini" / "runs.csv").write_text(CSV)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert find_results_dir() == Path("../results")
    assert find_reference_dir() == Path("../reference")
    assert find_reference_dir("/data/results") == Path("/data/reference")
    assert len(load_runs("mini")) == 3
    monkeypatch.chdir(tmp_path.parent)
    assert find_results_dir(tmp_path / "notebooks") == tmp_path / "notebooks" / ".." / "results"
    bare = tmp_path_factory.mktemp("bare")  # no results/ in it or above it
    assert find_results_dir(bare) == bare / "results"
    monkeypatch.chdir(bare)
    with pytest.raises(FileNotFoundError, match="no runs table at results/mini/runs.csv"):
        load_runs("mini")


def test_load_runs_names_the_fix_when_the_table_is_missing_or_short(tmp_path, results_dir):
    with pytest.raises(FileNotFoundError, match="movelab sweep run cpu-text.*--results-dir"):
        load_runs("cpu-text", tmp_path)
    (results_dir / "mini" / "runs.csv").write_text("run_id,depth\nabc,2\n")
    with pytest.raises(ValueError, match="lacks columns.*val_bpb"):
        load_runs("mini", results_dir)


@pytest.mark.parametrize("variant, label", [
    ("standard", "standard"), ("lave x2", "LaVE x2"), ("lave x1 +g0", "LaVE x1 +g0"),
    ("move x4 g0=1", "MoVE x4 g0=1"), ("move M=3", "MoVE M=3"),
    ("standard w256 (params of move x4)", "standard w256 (params of move x4)")])
def test_path_label(variant, label):
    assert display_name(variant) == label


def test_label_order_reads_standard_lave_move_then_ablations():
    labels = ["MoVE x16", "LaVE x1 +g0", "MoVE x2", "standard w256", "LaVE x2", "standard",
              "MoVE x4 g0=1", "LaVE x1", "MoVE x2"]
    assert variant_order(labels) == ["standard", "LaVE x1", "LaVE x2", "MoVE x2", "MoVE x16",
                                   "standard w256", "LaVE x1 +g0", "MoVE x4 g0=1"]


# --- compute laws ---------------------------------------------------------------------------

def test_compute_laws_recover_each_paths_exponent_and_skip_short_paths():
    truth = {"standard": (1.2, 40.0, 0.10), "MoVE x4": (1.0, 30.0, 0.08)}
    records = [{"variant": variant, "depth": d, "val_bpb": E + A * (6 * N_ACTIVE[d] ** 2) ** -a}
               for variant, (E, A, a) in [("standard", truth["standard"]),
                                           ("move x4", truth["MoVE x4"])] for d in DEPTHS]
    records += [{"variant": "lave x1", "depth": d, "val_bpb": 2.0} for d in DEPTHS[:3]]
    laws = fit_compute_laws(runs(records), bootstrap=20)
    assert set(laws.fits) == {"standard", "MoVE x4"}
    for label, (E, A, alpha) in truth.items():
        fit = laws.fits[label]
        assert fit.alpha == pytest.approx(alpha, rel=1e-3)
        assert fit.E == pytest.approx(E, abs=1e-3)
    table = laws.table.set_index("path_label")
    assert table.loc["LaVE x1", "note"] == "3 depth(s); a fit needs 4"
    assert np.isnan(table.loc["LaVE x1", "alpha"])
    low, high = table.loc["standard", ["alpha_low", "alpha_high"]]  # exact points: every
    assert low == pytest.approx(0.10, rel=1e-3) and high == pytest.approx(0.10, rel=1e-3)  # refit


def test_compute_laws_use_the_grid_unless_all_seeds():
    records = [{"variant": "standard", "depth": d, "val_bpb": dense_law(N_ACTIVE[d])}
               for d in DEPTHS]
    records.append({"variant": "standard", "depth": 4, "seed": 1, "groups": "seeds",
                    "val_bpb": 9.0})
    assert fit_compute_laws(runs(records), bootstrap=0).table["n_runs"].item() == 5
    assert fit_compute_laws(runs(records), bootstrap=0, all_seeds=True).table["n_runs"].item() == 6


# --- slots ----------------------------------------------------------------------------------

def test_gain_per_doubling_is_minus_the_slope_in_log2_slots():
    noise = [0.002, -0.001, -0.002, 0.001, 0.0]
    records = [{"variant": f"move x{k}", "depth": 4, "slots": 2 * k,
                "val_bpb": 2.0 - 0.03 * np.log2(2 * k) + e}
               for k, e in zip((1, 2, 4, 8, 16), noise)]
    records += [{"variant": f"move x{k}", "depth": 6, "slots": 3 * k,
                 "val_bpb": 1.8 - 0.01 * np.log2(3 * k)} for k in (1, 2)]
    records += [{"variant": "move x1", "depth": 8, "slots": 4, "val_bpb": 1.7},
                {"variant": "standard", "depth": 8, "val_bpb": 1.75}]
    gains = slot_doubling_gains(runs(records)).set_index("depth")
    slope = stats.linregress(np.log2([2, 4, 8, 16, 32]),
                             [r["val_bpb"] for r in records[:5]])
    half = stats.t.ppf(0.975, 3) * slope.stderr
    assert gains.loc[4, "gain_per_doubling"] == pytest.approx(-slope.slope)
    assert gains.loc[4, "low"] == pytest.approx(-slope.slope - half)
    assert gains.loc[4, "low"] < 0.03 < gains.loc[4, "high"]
    assert gains.loc[6, "gain_per_doubling"] == pytest.approx(0.01)
    assert gains.loc[6, "note"] == "two runs: no interval" and np.isnan(gains.loc[6, "low"])
    assert gains.loc[8, "note"] == "one slot count: no slope"
    assert gains.loc[8, "slots"] == "4"


# --- seed noise -----------------------------------------------------------------------------

def seeded(variant, depth, values):
    return [{"variant": variant, "depth": depth, "seed": s, "val_bpb": v,
             "groups": "grid;seeds" if s == 0 else "seeds"} for s, v in enumerate(values)]


def test_seed_noise_mean_std_and_t_interval():
    df = runs(seeded("standard", 4, [1.0, 1.1, 1.2]) + [{"variant": "move x1", "depth": 4,
                                                          "val_bpb": 1.0}])
    noise = seed_noise(df)
    assert len(noise) == 1  # one seed of MoVE x1: no noise to report
    row = noise.iloc[0]
    assert (row["path_label"], row["n_seeds"]) == ("standard", 3)
    assert row["mean"] == pytest.approx(1.1) and row["std"] == pytest.approx(0.1)
    assert row["high"] - row["mean"] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)


def test_compare_to_standard_separates_real_gaps_from_seed_noise():
    df = runs(seeded("standard", 6, [2.00, 2.03, 2.01]) + seeded("move x4", 6, [1.90, 1.92, 1.92])
              + seeded("lave x1", 6, [2.02, 2.00, 2.02]) + seeded("move x1", 6, [1.95])
              + seeded("standard", 2, [2.8]))
    table = compare_to_standard(df).set_index("path_label")
    assert list(table["depth"]) == [6, 6, 6]  # depth 2 has no repeated seeds
    move4 = table.loc["MoVE x4"]
    assert move4["difference"] == pytest.approx(-0.10)
    assert move4["test"] == "paired t" and move4["n"] == "3"
    assert move4["p_holm"] < 0.05 and move4["high"] < 0
    assert move4["verdict"] == "lower BPB than standard, beyond seed noise (Holm)"
    lave = table.loc["LaVE x1"]
    assert lave["low"] < lave["difference"] < lave["high"] and lave["p"] > 0.5
    assert lave["verdict"] == f"not resolved: detectable at this n is {lave['detectable']:.3f} BPB"
    assert table.loc["MoVE x1", "verdict"].startswith("not tested: 1 and 3 seeds")
    assert np.isnan(table.loc["MoVE x1", "p_holm"])


def test_paired_difference_is_scipys_paired_t_on_shared_seeds():
    a = pd.Series([2.31, 2.29, 2.35, 2.30], index=[0, 1, 2, 5])
    b = pd.Series([2.33, 2.32, 2.36, 9.0], index=[0, 1, 2, 3])  # seed 3 and 5 unpaired
    row = paired_difference(a, b)
    reference = stats.ttest_rel(a[[0, 1, 2]], b[[0, 1, 2]])
    bounds = reference.confidence_interval(0.95)
    assert (row["test"], row["n"]) == ("paired t", "3")
    assert row["p"] == pytest.approx(reference.pvalue)
    assert (row["low"], row["high"]) == pytest.approx((bounds.low, bounds.high))
    assert row["difference"] == pytest.approx(np.mean([-0.02, -0.03, -0.01]))
    # Welch's test on the same numbers could not resolve it: pairing removes the seed effect
    assert stats.ttest_ind(a[[0, 1, 2]], b[[0, 1, 2]], equal_var=False).pvalue > 0.3 > row["p"]


def test_paired_difference_falls_back_to_welch_without_shared_seeds():
    a, b = pd.Series([1.0, 1.2, 1.1], index=[0, 1, 2]), pd.Series([1.4, 1.5], index=[3, 4])
    row = paired_difference(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert (row["test"], row["n"]) == ("Welch t", "3+2")
    assert row["p"] == pytest.approx(reference.pvalue)
    assert row["low"] == pytest.approx(reference.confidence_interval(0.95).low)
    assert paired_difference(a, b.iloc[:1])["test"] == ""  # one seed: not tested


def test_smallest_detectable_difference_has_80_percent_power():
    for se, dof in ((0.01, 2), (0.02, 5), (0.005, 200)):
        delta = smallest_detectable(se, dof)
        critical = stats.t.ppf(0.975, dof)
        power = stats.nct.sf(critical, dof, delta / se) + stats.nct.cdf(-critical, dof,
                                                                         delta / se)
        assert power == pytest.approx(0.8, abs=1e-6)
    assert smallest_detectable(1.0, 10_000) == pytest.approx(1.96 + 0.8416, rel=2e-3)
    assert smallest_detectable(0.01, 2) > 2 * smallest_detectable(0.01, 200)  # few seeds: blunt


def test_holm_adjusts_in_rank_order_and_keeps_it_monotone():
    adjusted = holm([0.01, 0.04, np.nan, 0.03, 0.5])
    # ranks: 0.01 x 4 = 0.04; 0.03 x 3 = 0.09; 0.04 x 2 = 0.08 -> 0.09 (monotone); 0.5 x 1
    assert adjusted[[0, 3, 1, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adjusted[2])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


# --- exchange rate --------------------------------------------------------------------------

def test_exchange_rate_inverts_the_dense_law_by_hand():
    """Standard runs lie on 1 + 10 N^-0.25. A depth-6 model (N = 1e6) with the BPB of a dense
    2e6 is worth twice its active params (+100%); one with the BPB of 5e5, -50%; one below the
    law's floor E = 1 is worth no finite dense model."""
    records = [{"variant": "standard", "depth": d, "val_bpb": dense_law(N_ACTIVE[d])}
               for d in DEPTHS]
    records += [{"variant": "move x4", "depth": 6, "slots": 12, "val_bpb": dense_law(2e6)},
                {"variant": "lave x1", "depth": 6, "val_bpb": dense_law(5e5)},
                {"variant": "move x16", "depth": 6, "slots": 48, "val_bpb": 0.99}]
    exchange = exchange_rate(runs(records), bootstrap=20)
    assert exchange.params_law.alpha == pytest.approx(0.25, rel=1e-4)
    table = exchange.table.set_index("path_label")
    assert table.loc["MoVE x4", "dense_params"] == pytest.approx(2e6, rel=1e-3)
    assert table.loc["MoVE x4", "params_gain"] == pytest.approx(1.0, rel=1e-3)
    # training compute C = 6 N^2 here (tokens = N): twice the parameters is four times the compute
    assert table.loc["MoVE x4", "compute_gain"] == pytest.approx(3.0, rel=1e-3)
    assert table.loc["MoVE x4", "params_gain_lodo"] == pytest.approx(1.0, rel=1e-3)
    assert table.loc["MoVE x4", "params_gain_low"] <= 1.0 + 1e-3
    assert table.loc["MoVE x4", "params_gain_high"] >= 1.0 - 1e-3
    assert table.loc["MoVE x4", "delta_bpb"] == pytest.approx(dense_law(2e6) - dense_law(1e6))
    assert table.loc["LaVE x1", "params_gain"] == pytest.approx(-0.5, rel=1e-3)
    assert table.loc["LaVE x1", "note"] == "worse than the standard run at this depth"
    assert np.isinf(table.loc["MoVE x16", "dense_params"])
    assert "below the dense law's floor" in table.loc["MoVE x16", "note"]
    assert not table.loc["MoVE x4", "extrapolated"] and table.loc["MoVE x16", "extrapolated"]


def test_exchange_rate_without_enough_standard_depths_keeps_the_plain_comparison():
    records = [{"variant": "standard", "depth": d, "val_bpb": 2.0} for d in (2, 4)]
    records.append({"variant": "move x1", "depth": 4, "slots": 2, "val_bpb": 1.9})
    exchange = exchange_rate(runs(records), bootstrap=10)
    assert exchange.params_law is None and exchange.compute_law is None
    assert exchange.notes[0] == "no dense law: standard runs at 2 depth(s); a fit needs 4"
    row = exchange.table.iloc[0]
    assert row["delta_bpb"] == pytest.approx(-0.1) and np.isnan(row["params_gain"])


def test_exchange_rate_intervals_carry_the_memory_models_seed_noise():
    """The same dense law; a MoVE model with three noisy seeds gets a wider interval than one
    with three identical seeds, and single seeds take the pooled seed std."""
    records = [{"variant": "standard", "depth": d, "val_bpb": dense_law(N_ACTIVE[d])}
               for d in DEPTHS]
    records += seeded("move x4", 6, [dense_law(2e6) + e for e in (-0.03, 0.0, 0.03)])
    records += [dict(r, depth=8) for r in seeded("move x1", 8, [dense_law(6e6)] * 3)]
    records += [{"variant": "lave x1", "depth": 4, "val_bpb": dense_law(5e5)}]
    for r in records:
        r.setdefault("slots", 12 if r["variant"] == "move x4" else 4)
    exchange = exchange_rate(runs(records), bootstrap=200)
    table = exchange.table.set_index("path_label")
    noisy, quiet = table.loc["MoVE x4"], table.loc["MoVE x1"]
    assert noisy["bpb_sd"] == pytest.approx(0.03) and noisy["bpb_sd_source"] == "own seeds"
    assert quiet["bpb_sd"] == 0.0
    def width(row):
        return np.log((1 + row["params_gain_high"]) / (1 + row["params_gain_low"]))

    assert width(noisy) > 10 * max(width(quiet), 1e-6)
    assert noisy["params_gain_low"] < 1.0 < noisy["params_gain_high"]
    assert exchange.pooled_std == pytest.approx(np.sqrt((2 * 0.03**2 + 0) / 4))
    assert table.loc["LaVE x1", "bpb_sd"] == pytest.approx(exchange.pooled_std)
    assert table.loc["LaVE x1", "bpb_sd_source"] == "pooled seed std"


def test_exchange_rate_leave_deepest_out_uses_the_shallower_law():
    """Standard runs on 1 + 10 N^-0.25 except the deepest, which is far off the law: the
    leave-deepest-out columns are those of the clean law."""
    records = [{"variant": "standard", "depth": d, "val_bpb": dense_law(N_ACTIVE[d])}
               for d in DEPTHS[:-1]] + [{"variant": "standard", "depth": 10, "val_bpb": 1.5}]
    records.append({"variant": "move x4", "depth": 6, "slots": 12, "val_bpb": dense_law(2e6)})
    exchange = exchange_rate(runs(records), bootstrap=0)
    row = exchange.table.iloc[0]
    assert exchange.params_law_lodo.alpha == pytest.approx(0.25, rel=1e-3)
    assert row["params_gain_lodo"] == pytest.approx(1.0, rel=1e-3)
    assert abs(row["params_gain"] - 1.0) > 0.05


# --- identifiability ------------------------------------------------------------------------

def test_law_flags_say_when_the_floor_sits_at_its_bound():
    compute = np.geomspace(1e11, 1e14, 4)
    pure = fit_power_law(compute, 12.0 * compute ** -0.06, bootstrap=20)
    assert "E at its bound 0" in law_flags(pure, compute, pure.predict(compute))
    floor = 1.0 + 24.0 * compute ** -0.10
    fitted = fit_power_law(compute, floor, bootstrap=20)
    assert law_flags(fitted, compute, floor) == ()
    laws = fit_compute_laws(runs([{"variant": "standard", "depth": d,
                                   "val_bpb": 12.0 * (6 * N_ACTIVE[d] ** 2) ** -0.06}
                                  for d in DEPTHS[:4]]), bootstrap=10)
    assert "E at its bound 0" in laws.table["flags"].item()
    assert not band_is_drawn(laws.flags["standard"])


# --- pooled slot slope ----------------------------------------------------------------------

def slot_grid(slope, noise=0.0, seed=0):
    """MoVE runs at depths 4 and 6, slots k L / 2 for k in 1..16, seed 0 everywhere and seeds 1-2
    at k = 1 and 4 only, BPB = depth intercept + seed offset + slope log2 M (+ noise). The seed
    offsets are large and fall on few slot counts, so a fit that ignores seeds is biased."""
    rng = np.random.default_rng(seed)
    offsets, records = {0: 0.0, 1: 0.08, 2: -0.05}, []
    for depth, intercept in ((4, 2.6), (6, 2.3)):
        for k in (1, 2, 4, 8, 16):
            for s in (0, 1, 2) if k in (1, 4) else (0,):
                m = k * depth // 2
                records.append({"variant": f"move x{k}", "depth": depth, "slots": m, "seed": s,
                                "groups": "grid" if s == 0 else "seeds",
                                "val_bpb": intercept + offsets[s] + slope * np.log2(m)
                                + rng.normal(0, noise)})
    return runs(records)


def test_pooled_slot_gain_recovers_a_known_slope_with_depth_and_seed_effects():
    df = slot_grid(-0.01)
    pooled = pooled_slot_gain(df)
    assert pooled["gain_per_doubling"] == pytest.approx(0.01, abs=1e-12)
    assert pooled["depths"] == "4-6" and pooled["n_runs"] == 18 and pooled["n_seeds"] == 3
    naive = stats.linregress(np.log2(df["slots"]), df["val_bpb"] - df["depth"].map(
        {4: 2.6, 6: 2.3}))
    assert abs(-naive.slope - 0.01) > 1e-3  # ignoring seeds is biased by the seed offsets
    assert pooled_slot_gain(df, depths=[6])["gain_per_doubling"] == pytest.approx(0.01)
    noisy = pooled_slot_gain(slot_grid(-0.01, noise=0.005, seed=1))
    assert noisy["low"] < 0.01 < noisy["high"]
    assert noisy["dof"] == 18 - 6 - 1  # 6 blocks, one per (depth, seed)
    per_depth = slot_doubling_gains(df, all_seeds=True).set_index("depth")
    assert per_depth["gain_per_doubling"].to_numpy() == pytest.approx([0.01, 0.01])


def test_blocked_slope_matches_least_squares_with_block_dummies():
    rng = np.random.default_rng(0)
    x, blocks = rng.normal(size=12), np.repeat([0, 1, 2], 4)
    y = 0.3 * x + np.array([1.0, -2.0, 0.5])[blocks] + rng.normal(0, 0.1, 12)
    design = np.column_stack([x, np.eye(3)[blocks]])
    coef, residual, *_ = np.linalg.lstsq(design, y, rcond=None)
    fit = blocked_slope(x, y, blocks)
    se = np.sqrt(residual[0] / (12 - 4) * np.linalg.inv(design.T @ design)[0, 0])
    assert fit["slope"] == pytest.approx(coef[0]) and fit["se"] == pytest.approx(se)
    assert fit["dof"] == 8


def test_slot_gains_over_training_follow_each_evaluation(tmp_path):
    """Curves whose slope on log2 M is -0.02 at the first evaluation and 0 at the last: the
    table has that slope at each evaluation, per depth and pooled."""
    df = slot_grid(0.0).assign(tokens_seen=600, epochs=1.0)
    df["run_id"] = [f"r{i}" for i in range(len(df))]
    for row in df.itertuples():
        slope = np.linspace(-0.02, 0.0, 3)
        bpb = row.val_bpb + 0.1 * np.arange(3)[::-1] + slope * np.log2(row.slots)
        write_curve(tmp_path / "s" / "runs", row.run_id, bpb, 3 * bpb, 600)
    curves = load_curves(df, "s", tmp_path)
    table = slot_gains_over_training(df, curves)
    pooled = table[table["depth"].isna()]
    assert list(pooled["scope"].unique()) == ["pooled d4-d6"]
    assert pooled["gain_per_doubling"].to_numpy() == pytest.approx([0.02, 0.01, 0.0], abs=1e-9)
    assert pooled["fraction"].to_numpy() == pytest.approx([1 / 3, 2 / 3, 1.0])
    d6 = table[table["scope"] == "d6"]
    assert d6["gain_per_doubling"].to_numpy() == pytest.approx([0.02, 0.01, 0.0], abs=1e-9)


# --- repetition -----------------------------------------------------------------------------

def write_curve(folder, run_id, val_bpb, train_loss, tokens_seen):
    """A curve.csv of len(val_bpb) evaluations evenly spaced over tokens_seen."""
    evals = np.arange(1, len(val_bpb) + 1)
    (folder / run_id).mkdir(parents=True)
    pd.DataFrame({"step": evals * 10, "tokens": evals * tokens_seen // len(val_bpb),
                  "flops": 0, "lr_scale": 1.0, "train_loss": train_loss, "val_loss": 0.0,
                  "val_bpb": val_bpb}).to_csv(folder / run_id / "curve.csv", index=False)


def test_repetition_table_finds_where_val_bpb_turns_up(tmp_path):
    """Depth 10, 6 epochs in 6 evaluations: standard keeps falling; MoVE x1 is best at epoch 4
    (2.10) and ends 0.04 higher, with a lower train loss. A control run is left out; LaVE x1 at
    depth 8 has no standard run to compare with."""
    curves = {
        "std10": ("standard", 10, "grid", [2.5, 2.3, 2.2, 2.15, 2.1, 2.05], 3.8),
        "move10": ("move x1", 10, "grid", [2.4, 2.2, 2.12, 2.10, 2.13, 2.14], 3.3),
        "ctrl10": ("move x1 g0=1", 10, "controls", [2.4, 2.3, 2.2, 2.1, 2.0, 2.2], 3.0),
        "lave8": ("lave x1", 8, "grid", [2.6, 2.4, 2.3, 2.25], 4.0)}
    df = runs([{"run_id": run_id, "variant": variant, "depth": depth, "groups": groups,
                "tokens_seen": 1200, "epochs": 6.0 if depth == 10 else 3.0, "val_bpb": bpb[-1]}
               for run_id, (variant, depth, groups, bpb, _) in curves.items()])
    for run_id, (_, _, _, bpb, train) in curves.items():
        write_curve(tmp_path / "mini" / "runs", run_id, bpb, np.linspace(5, train, len(bpb)),
                    1200)
    loaded = load_curves(df, "mini", tmp_path)
    assert list(loaded.query("run_id == 'move10'")["epoch"]) == pytest.approx([1, 2, 3, 4, 5, 6])
    assert list(loaded.query("run_id == 'lave8'")["epoch"]) == pytest.approx([.75, 1.5, 2.25, 3])
    table = repetition_table(df, loaded)
    assert list(zip(table["depth"], table["path_label"])) == [(8, "LaVE x1"), (10, "standard"),
                                                              (10, "MoVE x1")]
    move, standard = table.iloc[2], table.iloc[1]
    assert (move["val_bpb"], move["val_bpb_best"], move["best_epoch"]) == pytest.approx(
        (2.14, 2.10, 4.0))
    assert move["rise"] == pytest.approx(0.04) and move["train_loss"] == pytest.approx(3.3)
    assert move["gap_to_standard_final"] == pytest.approx(0.09)
    assert move["gap_to_standard_best"] == pytest.approx(0.05)
    assert (standard["rise"], standard["best_epoch"], standard["epochs"]) == (0, 6.0, 6.0)
    assert standard["gap_to_standard_final"] == 0
    assert np.isnan(table.iloc[0]["gap_to_standard_final"]) and table.iloc[0]["rise"] == 0


def test_load_curves_names_the_missing_curve(tmp_path):
    df = runs([{"run_id": "gone", "variant": "standard", "depth": 2, "tokens_seen": 100,
                "epochs": 1.0, "val_bpb": 2.0}])
    path = tmp_path / "mini" / "runs" / "gone" / "curve.csv"
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(path))}.*--results-dir"):
        load_curves(df, "mini", tmp_path)


# --- joint law ------------------------------------------------------------------------------

def test_joint_law_selection_picks_the_generating_form_on_the_held_out_depth():
    """Losses from the effective form E + A / (N^alpha (1 + M)^gamma): it must extrapolate to
    depth 10 best, almost exactly."""
    def effective(n, m):
        return 1.0 + 20.0 / (n ** 0.3 * (1 + m) ** 0.05)
    records = [{"variant": "standard", "depth": d, "val_bpb": effective(N_ACTIVE[d], 0)}
               for d in DEPTHS]
    records += [{"variant": f"move x{k}", "depth": d, "slots": k * d // 2,
                 "val_bpb": effective(N_ACTIVE[d], k * d // 2)}
                for d in DEPTHS for k in (1, 4, 16)]
    records.append({"variant": "lave x1", "depth": 10, "val_bpb": 5.0})  # not in the law
    selection = select_joint_law(runs(records))
    assert selection.heldout_depth == 10
    assert selection.table["form"].iloc[0] == "effective"
    assert selection.table["rmse"].iloc[0] < 1e-4
    assert list(selection.table["n_heldout"]) == [4, 4, 4]
    assert list(selection.table["n_fit"]) == [16, 16, 16]
    best = selection.predictions[selection.predictions["form"] == "effective"]
    assert list(best["slots"]) == [0, 5, 20, 80]


def test_joint_law_selection_needs_depths_to_hold_one_out():
    records = [{"variant": v, "depth": d, "slots": s, "val_bpb": 2.0 - 0.01 * s}
               for d in (2, 4, 6) for v, s in (("standard", 0), ("move x1", 1))]
    selection = select_joint_law(runs(records))
    assert selection.scores == () and selection.table.empty and selection.heldout_depth is None
    assert selection.notes == ("3 depth(s) of standard/MoVE runs; holding one out needs 3 "
                               "shallower ones to fit",)


# --- the fitters on known answers, and accounting -------------------------------------------

README = """# Reference
| fit | E | A | B | alpha | beta |
|---|---|---|---|---|---|
| Epoch, Huber (delta 1e-3) | 1.8 | 400.0 | 1200 | 0.33 | 0.3 |
| Epoch 95% bootstrap interval | 1.7-1.9 | 300-500 | 1000-1500 | 0.3-0.36 | 0.28-0.32 |
"""


def test_chinchilla_reproduction_drops_the_top_five_and_sits_beside_the_published_table(
        tmp_path):
    n, d = (grid.ravel() for grid in np.meshgrid(np.geomspace(1e7, 1e10, 6),
                                                 np.geomspace(1e9, 1e12, 6)))
    loss = 1.8 + 400.0 / n ** 0.33 + 1200.0 / d ** 0.3
    outliers = pd.DataFrame({"Model Size": [1e8] * 5, "Training FLOP": [6e17] * 5,
                             "loss": [9.0] * 5})
    pd.concat([pd.DataFrame({"Model Size": n, "Training FLOP": 6 * n * d, "loss": loss}),
               outliers]).to_csv(tmp_path / "chinchilla_fig4_points.csv", index=False)
    (tmp_path / "README.md").write_text(README)
    assert published_chinchilla_fits(tmp_path)["Epoch 95% bootstrap interval"]["A"] == (300, 500)
    grid = {"a": (0.0, 10.0), "b": (0.0, 10.0), "e": (0.0, 1.0), "alpha": (0.5,), "beta": (0.5,)}
    reproduction = chinchilla_reproduction(tmp_path, bootstrap=5, start_grid=grid)
    table = reproduction.table.set_index("parameter")
    assert table.loc["alpha", "ours"] == pytest.approx(0.33, rel=1e-4)
    assert table.loc["B", "ours"] == pytest.approx(1200.0, rel=1e-3)
    assert table.loc["E", "epoch_huber"] == 1.8 and table.loc["beta", "epoch_low"] == 0.28


def test_chinchilla_reproduction_without_reference_data_is_skipped_with_a_note(tmp_path):
    reproduction = chinchilla_reproduction(tmp_path)
    assert reproduction.fit is None and reproduction.table.empty
    assert "no reference points" in reproduction.notes[0]
    assert published_chinchilla_fits(tmp_path) == {}


def test_synthetic_recovery_is_exact_without_noise():
    recovery = synthetic_recovery(noise=0.0, bootstrap=5, compute=np.geomspace(1e11, 1e14, 6))
    assert len(recovery) == 6
    for column in ("fitted", "low", "high"):  # exact points: every refit finds the truth
        np.testing.assert_allclose(recovery[column], recovery["true"], rtol=1e-3, atol=1e-4)


def test_accounting_table_memory_grows_flops_barely_move():
    table = accounting_table(ladder_records(["cpu"])).set_index(["preset", "path_label"])
    assert (table.xs("standard", level="path_label")["params_total_vs_standard"] == 1).all()
    d8 = table.loc["cpu-d8"]
    assert d8.loc["MoVE x32", "params_memory"] == 32 * d8.loc["MoVE x1", "params_memory"]
    assert d8.loc["MoVE x1", "params_memory"] == d8.loc["LaVE x1", "params_memory"]
    assert d8.loc["MoVE x32", "flops_per_token_train_vs_standard"] < 1.3
    assert d8.loc["MoVE x32", "params_total_vs_standard"] > 10
