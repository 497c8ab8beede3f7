"""The decoupling plans' secondary analyses (movelab.scaling.secondary) on rows whose answers are
known by construction, and the post-hoc diagnostics of a standard run that they read."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from movelab.cli import main
from movelab.inspection import save_missing_diagnostics
from movelab.scaling.load import load_frequency_bpb, run_diagnostics
from movelab.scaling.secondary import (dense_control_rate, diagnostics_over_training,
                                       frequency_differences, matched_comparisons,
                                       planned_comparisons)
from test_scaling_analysis import runs

SEED_OFFSETS = {0: 0.0, 1: 0.02, 2: -0.01}  # shared by every run of a seed (same batches)
GAINS = {"move x4": -0.05, "lave x1": -0.01}  # val BPB minus standard, by construction


def rows_with_a_control(control_split: str = "test"):
    """d6: standard and MoVE x4 (paper and symbreak, the same size) with seeds 0-2, LaVE x1 with
    seeds 2 and 0 only (listed in that order), and a dense control (seeds 0-2) whose total
    parameters equal MoVE x4's, 0.03 better than MoVE x4; listed first, a dev-split run of the
    same control at seed 0 (a learning-rate choice) far better than everything, which must not
    enter."""
    records = [{"variant": "dense w240", "depth": 6, "seed": 0, "params_total": 4.02e6,
                "flops_per_token_train": 2.6e7, "recipe": "lr=0.02", "role": "control",
                "val_bpb": 1.0}]
    cells = (("move x4 symbreak", 4e6, 6.1e6, GAINS["move x4"], (0, 1, 2)),
             ("standard", 1e6, 6e6, 0.0, (0, 1, 2)),
             ("lave x1", 1.7e6, 6.01e6, GAINS["lave x1"], (2, 0)),
             ("move x4", 4e6, 6.1e6, GAINS["move x4"], (0, 1, 2)))
    for variant, total, flops, gain, seeds in cells:
        for seed in seeds:
            records.append({"variant": variant, "depth": 6, "seed": seed, "params_total": total,
                            "flops_per_token_train": flops, "recipe": "eval_split=test",
                            "role": "main" if seed == 0 else "seed",
                            "val_bpb": 2.0 + SEED_OFFSETS[seed] + gain})
    for seed, offset in SEED_OFFSETS.items():
        records.append({"variant": "dense w240", "depth": 6, "seed": seed, "params_total": 4.02e6,
                        "flops_per_token_train": 2.6e7, "recipe": f"eval_split={control_split}",
                        "role": "control", "val_bpb": 2.0 + offset + GAINS["move x4"] - 0.03})
    df = runs(records)
    df.loc[df["variant"] == "dense w240", "value_path"] = "standard"  # a wider standard model
    labels = {"standard": "standard", "lave x1": "LaVE x1", "move x4": "MoVE x4",
              "move x4 symbreak": "MoVE x4 symbreak"}
    return df.assign(task="text", path_label=df["variant"].map(lambda v: labels.get(v, v)))


def test_matched_comparisons_pair_by_seed_and_say_what_is_matched():
    df = rows_with_a_control()
    assert planned_comparisons(df) == [
        (6, "MoVE x4 symbreak", "standard"), (6, "LaVE x1", "standard"),
        (6, "MoVE x4", "standard"), (6, "MoVE x4", "dense w240")]  # the paper's arm, not the tie
    table = matched_comparisons(df).set_index(["path_label", "reference"])
    move = table.loc[("MoVE x4", "standard")]
    assert move["difference"] == pytest.approx(GAINS["move x4"])
    assert move["test"] == "paired t" and move["n"] == "3"
    assert move["matched"] == "FLOPs" and move["flops_ratio"] == pytest.approx(6.1 / 6)
    lave = table.loc[("LaVE x1", "standard")]  # paired by seed label: seeds 2 and 0
    assert lave["n"] == "2" and lave["difference"] == pytest.approx(GAINS["lave x1"])
    control = table.loc[("MoVE x4", "dense w240")]  # the dev run at seed 0 (1.0) is not in it
    assert control["matched"] == "total params" and control["total_ratio"] == pytest.approx(4 / 4.02)
    assert control["difference"] == pytest.approx(0.03) and control["n"] == "3"
    # seed offsets cancel in the pairs: identical differences across seeds, nothing to test
    assert np.isnan(move["p"]) and np.isnan(move["p_holm"])


def test_a_dev_split_control_is_never_compared():
    df = rows_with_a_control(control_split="dev")
    assert all(reference == "standard" for _, _, reference in planned_comparisons(df))
    table = matched_comparisons(df, [(6, "MoVE x4", "dense w240")])
    assert table.loc[0, "n_reference"] == 0 and table.loc[0, "test"] == ""


def test_noisy_pairs_get_an_interval_and_holm_within_the_depth():
    df = rows_with_a_control()
    rng = np.random.default_rng(0)
    df["val_bpb"] += rng.normal(0, 0.003, len(df))
    table = matched_comparisons(df)
    assert (table["low"] < table["difference"]).all() and (table["difference"] < table["high"]).all()
    move = table[(table["path_label"] == "MoVE x4") & (table["reference"] == "standard")].iloc[0]
    at = df.set_index(["path_label", "seed"])["val_bpb"]
    pairs = np.array([at["MoVE x4", s] - at["standard", s] for s in (0, 1, 2)])
    half = stats.t.ppf(0.975, 2) * pairs.std(ddof=1) / np.sqrt(3)  # t interval on 2 dof
    assert (move["low"], move["high"]) == pytest.approx((pairs.mean() - half, pairs.mean() + half))
    # one depth, four tests: Holm multiplies the k-th smallest p by 4 - k (k from 0), running max
    p = table["p"].to_numpy()
    order = np.argsort(p)
    expected = np.maximum.accumulate(np.minimum(1, p[order] * np.array([4, 3, 2, 1])))
    assert table["p_holm"].to_numpy()[order] == pytest.approx(expected)
    assert set(table["holm_m"]) == {4}


def frequency_rows(depth=4, gains=None, seeds=(0, 1, 2), one_seed=("MoVE x16",)):
    """load_frequency_bpb-shaped rows: 5 buckets; each label's BPB minus standard's per bucket
    is gains[label][bucket], the same at every seed (seed offsets shared)."""
    gains = gains or {"MoVE x4": [-0.08, -0.05, -0.03, -0.02, -0.01], "MoVE x16": [-0.1] * 5}
    records = []
    for label in ["standard", *gains]:
        for seed in (seeds[:1] if label in one_seed else seeds):
            for bucket in range(1, 6):
                records.append({"run_id": f"{label}-{seed}", "path_label": label, "depth": depth,
                                "seed": seed, "bucket": bucket, "occurrences_min": 10 ** bucket,
                                "occurrences_max": 10 ** (bucket + 1), "positions": 100,
                                "val_bpb": 2.0 + SEED_OFFSETS[seed] + 0.1 * bucket
                                + (gains[label][bucket - 1] if label in gains else 0.0),
                                "source": "result.json"})
    return pd.DataFrame(records)


def test_frequency_differences_recover_the_constructed_gain_per_bucket():
    table = frequency_differences(frequency_rows(), ["MoVE x4", "MoVE x16"])
    move = table[table["path_label"] == "MoVE x4"].sort_values("bucket")
    assert move["difference"].to_numpy() == pytest.approx([-0.08, -0.05, -0.03, -0.02, -0.01])
    assert set(move["test"]) == {"paired t"} and set(move["n"]) == {"3"}
    one = table[table["path_label"] == "MoVE x16"]
    assert set(one["test"]) == {"one seed"} and one["low"].isna().all()  # a lead, not a test
    assert one["difference"].to_numpy() == pytest.approx([-0.1] * 5)
    assert table["occurrences_min"].tolist()[:1] == [10]


def test_frequency_differences_with_one_shared_seed_fall_back_to_welch_over_all_seeds():
    # standard at seeds 0 and 2, MoVE x4 at 0 and 1 (a sweep midway): one shared seed is no
    # pair to test, so paired_difference's rule compares every seed of each arm, unpaired
    rows = frequency_rows(gains={"MoVE x4": [-0.05] * 5}, one_seed=())
    rows = rows[~((rows["path_label"] == "standard") & (rows["seed"] == 1))
                & ~((rows["path_label"] == "MoVE x4") & (rows["seed"] == 2))]
    table = frequency_differences(rows, ["MoVE x4"])
    assert set(table["test"]) == {"Welch t"} and set(table["n"]) == {"2+2"}
    welch = -0.05 + np.mean([SEED_OFFSETS[0], SEED_OFFSETS[1]]) - np.mean([SEED_OFFSETS[0], SEED_OFFSETS[2]])
    assert table["difference"].to_numpy() == pytest.approx([welch] * 5)
    assert welch != pytest.approx(-0.05)  # not the one shared seed's pair


def test_diagnostics_over_training_are_seed_means_at_each_fraction():
    # seed 2's last evaluation recorded no diagnostic: its first is still at half of training
    curves = pd.DataFrame([{"run_id": f"r{seed}", "path_label": "MoVE x4", "depth": 4, "slots": 8,
                            "seed": seed, "tokens": tokens, "slot_effective_count": value}
                           for seed, values in ((0, (1.0, 1.4)), (1, (1.2, 1.8)), (2, (1.1, None)))
                           for tokens, value in zip((500, 1000), values)])
    table = diagnostics_over_training(curves).set_index("fraction")
    assert table.loc[0.5, "slot_effective_count"] == pytest.approx(1.1)
    assert table.loc[0.5, "n_seeds"] == 3 and table.loc[1.0, "n_seeds"] == 2
    assert table.loc[1.0, "slot_effective_count"] == pytest.approx(1.6)
    assert table.loc[1.0, "slot_effective_count_std"] == pytest.approx(np.std([1.4, 1.8], ddof=1))
    assert set(table["slots"]) == {8}


def test_a_standard_runs_diagnostics_saved_from_its_model_are_what_the_analysis_reads(
        tmp_path, capsys):
    from movelab.config import build_config
    from movelab.training.config import RunConfig, TrainConfig
    from movelab.training.loop import train

    run_dir = tmp_path / "mini" / "runs" / "abc"
    run = RunConfig(build_config(depth=2, width=32, heads=1, vocab_size=64, seq_len=24),
                    TrainConfig(corpus="recall:K=2,tokens=30000", tokens=24 * 8 * 4,
                                batch_size=8, evals=1))
    train(run, run_dir, progress=False)
    assert run_diagnostics(run_dir) == (None, "")  # a standard run records none
    cache = ["--cache-dir", str(tmp_path / "cache")]
    # what `sweep collect --from` runs first: every such run of the folder, once
    assert save_missing_diagnostics(run_dir.parent, tmp_path / "cache", log=lambda _: None) == ["abc"]
    assert save_missing_diagnostics(run_dir.parent, tmp_path / "cache", log=lambda _: None) == []
    bulk = json.loads((run_dir / "diagnostics.json").read_text())
    (run_dir / "diagnostics.json").unlink()
    capsys.readouterr()
    assert main(["inspect", str(run_dir), "--save", "--json", *cache]) in (0, None)  # from model.pt
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run_dir / "diagnostics.json").read_text())
    assert saved["diagnostics"] == printed == bulk["diagnostics"] and len(saved["model_sha256"]) == 64
    assert json.loads((run_dir / "result.json").read_text()).get("diagnostics") is None
    df = pd.DataFrame([{"run_id": "abc", "path_label": "standard", "depth": 2, "seed": 0}])
    frequency = load_frequency_bpb(df, "mini", tmp_path)
    assert list(frequency["bucket"]) == [1, 2, 3, 4, 5] and set(frequency["source"]) == {"diagnostics.json"}
    assert frequency["val_bpb"].tolist() == [b["val_bpb"] for b in printed["val_bpb_by_frequency"]]
    # where result.json has them, they are what is read, and --save refuses (it would be unread)
    result = json.loads((run_dir / "result.json").read_text())
    recorded = {**printed, "val_bpb_by_frequency": printed["val_bpb_by_frequency"][:1]}
    (run_dir / "result.json").write_text(json.dumps({**result, "diagnostics": recorded}))
    assert run_diagnostics(run_dir) == (recorded, "result.json")
    assert main(["inspect", str(run_dir), "--recompute", "--save"]) == 2
    assert "already records the diagnostics" in capsys.readouterr().err


def test_the_secondary_figure_of_the_committed_prose_rows_reads_cleanly():
    from pathlib import Path

    from movelab.scaling.figures import fig_decoupling_secondary
    from movelab.scaling.load import load_curves, load_runs, runs_csv_path
    from movelab.scaling.secondary import frequency_bpb_on_test
    from test_figures import reader_defects

    results = Path(__file__).resolve().parent.parent / "results"
    if not runs_csv_path("decouple-prose", results).exists():
        pytest.skip("results/decouple-prose/runs.csv is not committed")
    df = load_runs("decouple-prose", results)
    fig = fig_decoupling_secondary(df, frequency_bpb_on_test(df, "decouple-prose", results),
                                   load_curves(df, "decouple-prose", results), title="decouple-prose")
    assert reader_defects(fig) == []
    assert f"decouple-prose, {len(df)} runs: secondary analyses" in fig._suptitle.get_text()


def dense_rate_rows(tmp_path, dev_bpb: dict[float, float]):
    """A sweep "mini" under tmp_path: the dense control's dev runs at the rates of `dev_bpb`
    (rate -> dev val_bpb), and its test-split run at rate 0.01, better than all of them, which a
    choice must never read; each run's result.json records its training settings."""
    records = [{"variant": "dense w240", "depth": 6, "seed": 0, "role": "control",
                "recipe": "", "val_bpb": bpb, "lr": lr}  # dev, the default: not in the recipe
               for lr, bpb in dev_bpb.items()]
    records.append({"variant": "dense w240", "depth": 6, "seed": 0, "role": "control",
                    "recipe": "eval_split=test", "val_bpb": 0.5, "lr": 0.01, "split": "test"})
    df = runs([{k: v for k, v in r.items() if k not in ("lr", "split")} for r in records])
    df = df.assign(value_path="standard", path_label="dense w240", task="text",
                   run_id=[f"run{i}" for i in range(len(df))])
    for run_id, record in zip(df["run_id"], records):
        run_dir = tmp_path / "mini" / "runs" / run_id
        run_dir.mkdir(parents=True)
        # as the recorder writes it: a recipe field at its default (dev) is left out
        train = {"lr": record["lr"], **({"eval_split": "test"} if "split" in record else {})}
        (run_dir / "result.json").write_text(json.dumps({"config": {"train": train}}))
    return df


@pytest.mark.parametrize("dev_bpb, chosen, run_next", [
    ({0.005: 1.9, 0.01: 1.8}, None, None),                       # not all three yet
    ({0.005: 1.9, 0.01: 1.8, 0.02: 1.85}, 0.01, None),           # inside: chosen
    ({0.005: 1.9, 0.01: 1.85, 0.02: 1.8}, None, 0.04),           # at the top edge: one more
    ({0.005: 1.8, 0.01: 1.85, 0.02: 1.9}, None, 0.0025),         # at the bottom edge
    ({0.005: 1.9, 0.01: 1.85, 0.02: 1.8, 0.04: 1.7}, 0.04, None),  # the extra run decides
])
def test_the_dense_control_rate_follows_the_plans_rule_on_dev_rows_only(tmp_path, dev_bpb,
                                                                         chosen, run_next):
    out = dense_control_rate(dense_rate_rows(tmp_path, dev_bpb), "mini", tmp_path)
    assert (out["chosen"], out["run_next"]) == (chosen, run_next), out["reason"]
    assert sorted(out["runs"]["lr"]) == sorted(dev_bpb)  # the test-split run never counts
