"""Notebooks 08 and 09 on a stand-in for a *completed* decouple-prose (and a half-finished one):
every run its sweep.toml plans (and the dense-test group PLAN.md adds once the dense control's
rate is chosen), so their check cells meet, before the real rows exist, the kinds of rows they
have not met yet: d6 seeds 1-2 of every seeded cell, the d6 symbreak arm, the d8 standard run of
the dense law, and the dense control on the dev split (three rates) and on the test split (seeds
0-2).

The stand-in lives under tmp_path and is built from committed records only. A committed run is
copied as it is. A run not yet finished takes its run id, groups, role, variant and config from
the sweep's own plan (`movelab.sweep.load_sweep`, so result.json's config.train is what that run
will record, e.g. no eval_split on a dev run: a recipe field at its default is left out), its
accounting from `analytic_costs`, its runs.csv row from `movelab.sweep.csv_row`, and its scores,
curve and diagnostics from a committed donor run (DONORS below). Nothing is written to results/."""

import csv
import json
import re
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from movelab.accounting import analytic_costs
from movelab.scaling.load import load_runs, with_train_settings
from movelab.scaling.secondary import (dense_control_rate, matched_comparisons,
                                       planned_comparisons)
from movelab.sweep import csv_row, load_sweep
from test_notebooks_sweeps import NOTEBOOKS, RESULTS, SWEEP_LINE, printed

SWEEP = "decouple-prose"
SOURCE = RESULTS / SWEEP
DENSE = "dense w240"
CHOSEN_RATE = 0.01  # what the rule picks from the dev donors below (the middle rate lowest)
# PLAN.md: "a dense-test group (seeds 0, 1, 2 at the chosen rate, test split) is added"
DENSE_TEST_GROUP = f"""
[[group]]
role = "control"
name = "dense-test"
depths = [6]
seeds = [0, 1, 2]
train = {{lr = {CHOSEN_RATE}}}
variants = [{{label = "{DENSE}", value_path = "standard", width = 240, heads = 6}}]
"""
# the dense control's dev runs: base rate -> the committed d6 standard seed whose scores it takes
# (1.866, 1.8205, 1.8218: the lowest dev BPB at the middle rate, so the rule chooses, not extends)
DEV_DONOR_SEED = {0.005: 2, 0.01: 1, 0.02: 0}
SCORES = ("val_bpb", "val_bpb_best", "val_loss", "train_loss")
COSTS = ("params_total", "params_active", "flops_per_token_train", "flops_per_token_forward",
         "flops_per_token_train_matmul", "flops_per_token_train_attention",
         "flops_per_token_value_mix_forward", "elements_gathered_per_token",
         "bytes_gathered_per_token", "bytes_gathered_per_token_bf16", "bytes_embedding_per_token")


def committed_rows() -> list[dict]:
    with open(SOURCE / "runs.csv") as file:
        return list(csv.DictReader(file))


def _cell(rows, depth: int, variant: str, seed: int | None = None) -> dict:
    """The committed row of (depth, variant) at `seed`, else at its lowest committed seed."""
    cell = sorted((r for r in rows if int(r["depth"]) == depth and r["variant"] == variant),
                  key=lambda r: int(r["seed"]))
    if not cell:
        pytest.skip(f"results/{SWEEP} lacks the committed d{depth} {variant} a stand-in copies")
    return next((r for r in cell if int(r["seed"]) == seed), cell[0])


def donors(planned, rows) -> tuple[dict, dict]:
    """(the committed run whose folder, curve and diagnostics a missing run copies, the one whose
    scores it takes). DONORS:
      seeds 1-2 of a d6 cell        that cell's lowest committed seed (MoVE x1/x4/x16: seed 0)
      d6 "move xk symbreak"         d6 "move xk" (the paper's recipe) seed 0
      d8 standard                   d6 standard seed 0's folder, with the scores of d6 MoVE x8
                                    seed 0 (BPB 1.688: below d6 standard, as a deeper model's)
      the dense control, dev        d6 standard at seed DEV_DONOR_SEED[its rate]
      the dense control, test       d6 standard +g0 at its seed (a standard-path record too),
                                    so its comparison with MoVE x4 is not standard's"""
    model, train = planned.run.model, planned.run.train
    if planned.variant == DENSE:
        donor = (_cell(rows, 6, "standard", DEV_DONOR_SEED[train.lr]) if train.eval_split == "dev"
                 else _cell(rows, 6, "standard +g0", train.seed))
        return donor, donor
    if model.depth == 8:
        return _cell(rows, 6, "standard", 0), _cell(rows, 6, "move x8", 0)
    paper = planned.variant.removesuffix(" symbreak")
    donor = _cell(rows, model.depth, paper, 0 if paper != planned.variant else train.seed)
    return donor, donor


def record_of(planned, folder: dict, scores: dict) -> dict:
    """The donor's result.json made the planned run's: its id, config, shape and accounting,
    and the scores of `scores` (both runs' own result.json values, so runs.csv and result.json
    agree as the check cells require)."""
    result = json.loads((SOURCE / "runs" / folder["run_id"] / "result.json").read_text())
    scored = json.loads((SOURCE / "runs" / scores["run_id"] / "result.json").read_text())
    model, train = planned.run.model, planned.run.train
    costs = analytic_costs(model)
    result.update(
        run_id=planned.run_id, config_hash=planned.run_id, config=planned.run.to_dict(),
        label=model.label, value_path=model.value_path, depth=model.depth, width=model.width,
        slots=model.slots or 0, density=model.density, gate_standard=model.gate_standard,
        seed=train.seed, params=costs.params, **{k: getattr(costs, k) for k in COSTS},
        tokens_seen=train.tokens, train_flops=train.tokens * costs.flops_per_token_train,
        steps=train.tokens // (train.batch_size * model.seq_len),
        epochs=train.tokens / result["data"]["train_tokens"],
        data={**result["data"], "eval_split": train.eval_split},
        **{k: scored[k] for k in SCORES})
    return result


def write_folder(target, planned, folder: dict, result: dict) -> None:
    """The donor's run folder under the planned run's id, with its record rewritten (and a curve
    stretched to the run's tokens where it trains longer than the donor)."""
    here = target / "runs" / planned.run_id
    shutil.copytree(SOURCE / "runs" / folder["run_id"], here)
    (here / "result.json").write_text(json.dumps(result, indent=1))
    (here / "run.json").write_text(json.dumps({"config": result["config"],
                                               "config_hash": planned.run_id}))
    stretch = result["tokens_seen"] / int(folder["tokens_seen"])
    if stretch != 1:
        with open(here / "curve.csv") as file:
            curve = list(csv.DictReader(file))
        for point in curve:
            for column in ("step", "tokens", "flops"):
                point[column] = str(round(float(point[column]) * stretch))
        with open(here / "curve.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(curve[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(curve)


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """tmp/results/decouple-prose, every planned run finished (and dense-test added); returns
    the tmp folder holding results/ and notebooks/, and the stand-in's own runs (id -> kind)."""
    return stand_in(tmp_path_factory, "complete", keep=lambda index: True)


@pytest.fixture(scope="module")
def midway(tmp_path_factory):
    """The same with every other missing run finished, in plan order: seeds of d6 cells
    unbalanced, part of the symbreak arm, part of the dense control's dev runs and test seeds
    (which ones depends on how far the committed sweep is)."""
    return stand_in(tmp_path_factory, "midway", keep=lambda index: index % 2 == 0)


def stand_in(tmp_path_factory, name: str, keep):
    if not (SOURCE / "runs.csv").exists():
        pytest.skip(f"results/{SWEEP}/runs.csv is not committed")
    base = tmp_path_factory.mktemp(name)
    target = base / "results" / SWEEP
    target.mkdir(parents=True)
    (base / "notebooks").mkdir()
    rows = committed_rows()
    for row in rows:
        shutil.copytree(SOURCE / "runs" / row["run_id"], target / "runs" / row["run_id"])
    shutil.copy(SOURCE / "PLAN.md", target / "PLAN.md")
    plan = (SOURCE / "sweep.toml").read_text()  # dense-test is committed once the rate is chosen
    (target / "sweep.toml").write_text(plan if DENSE_TEST_GROUP in plan else plan + DENSE_TEST_GROUP)
    sweep = load_sweep(SWEEP, base / "results")
    done = {r["run_id"] for r in rows}
    assert done <= {p.run_id for p in sweep.runs}, "a committed row the sweep does not plan"
    added, kinds = [], {}
    missing = [planned for planned in sweep.runs if planned.run_id not in done]
    for planned in (p for index, p in enumerate(missing) if keep(index)):
        folder, scores = donors(planned, rows)
        result = record_of(planned, folder, scores)
        write_folder(target, planned, folder, result)
        added.append({k: ("" if v is None else v) for k, v in csv_row(result, planned).items()})
        kinds[planned.run_id] = (planned.groups[0], planned.variant, planned.run.train.seed)
    with open(target / "runs.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows + added)
    assert all(sweep.status(p) == "done" for p in sweep.runs) == (len(kinds) == len(missing))
    return base, kinds


def test_the_stand_in_is_the_completed_sweep(complete):
    base, kinds = complete
    df = load_runs(SWEEP, base / "results")
    assert len(df) == 76 + 3 and df["run_id"].is_unique  # PLAN.md's 76, and dense-test's 3
    groups = df["groups"].str.split(";").explode().value_counts()  # committed and stand-in rows
    assert (groups["d6-symbreak"], groups["d8-law"], groups["dense-test"]) == (9, 1, 3)
    assert all(groups[g] == 1 for g in ("dense-lr-0.5x", "dense-lr-1x", "dense-lr-2x"))
    assert len(kinds) == len(df) - len(committed_rows())
    seeded = df[df["role"].isin(("main", "seed")) & df["depth"].isin((4, 6))]
    counts = seeded.groupby(["depth", "path_label"])["seed"].nunique()
    assert set(counts[counts > 1]) == {3}  # every seeded cell balanced at 3 seeds
    dense = with_train_settings(df[df["path_label"] == DENSE], SWEEP, base / "results")
    assert sorted(dense["train_lr"]) == [0.005, 0.01, 0.01, 0.01, 0.01, 0.02]
    assert sorted(dense["recipe"]) == ["", "", "", "eval_split=test", "eval_split=test",
                                       "eval_split=test"]  # as csv_row writes a dev run's
    for run_id in dense.loc[dense["recipe"] == "", "run_id"]:  # as the loop records a dev run
        record = json.loads((base / "results" / SWEEP / "runs" / run_id / "result.json").read_text())
        assert "eval_split" not in record["config"]["train"] and record["data"]["eval_split"] == "dev"


def test_the_dense_control_rate_is_chosen_from_the_dev_runs(complete):
    """PLAN.md's one choice, on the three dev runs as the sweep records them (result.json's
    config.train without eval_split: "dev" is its default, left out like every recipe field)."""
    base, _ = complete
    df = load_runs(SWEEP, base / "results")
    rate = dense_control_rate(df, SWEEP, base / "results")
    assert len(rate["runs"]) == 3, rate["reason"]
    assert rate["chosen"] == CHOSEN_RATE and rate["run_next"] is None, rate["reason"]


def test_the_dense_control_on_the_test_split_is_matched_with_move_x4(complete):
    """PLAN.md's equal-total-parameter comparison: d6 MoVE x4 against the dense control's three
    test-split seeds, paired by seed, its dev runs (seed 0 too) left out."""
    base, _ = complete
    df = load_runs(SWEEP, base / "results")
    assert (6, "MoVE x4", DENSE) in planned_comparisons(df)
    table = matched_comparisons(df).set_index(["depth", "path_label", "reference"])
    row = table.loc[(6, "MoVE x4", DENSE)]
    assert row["matched"] == "total params" and row["total_ratio"] == pytest.approx(6192672 / 6116880)
    assert (row["test"], row["n"], row["n_seeds"], row["n_reference"]) == ("paired t", "3", 3, 3)
    bpb = {(r.path_label, r.seed, r.recipe): r.val_bpb for r in df.itertuples() if r.depth == 6}
    pairs = [bpb["MoVE x4", s, "eval_split=test"] - bpb[DENSE, s, "eval_split=test"]
             for s in (0, 1, 2)]
    assert row["difference"] == pytest.approx(sum(pairs) / 3)
    assert row["difference"] != pytest.approx(table.loc[(6, "MoVE x4", "standard"), "difference"])


def executed(name: str, base) -> tuple[str, str]:
    """What notebook `name` prints and what it displays (text/plain), run on the stand-in."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and SWEEP_LINE.search(c.source)]
    cell.source = SWEEP_LINE.sub(f'SWEEP = "{SWEEP}"', cell.source)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(base / "notebooks")}}).execute()
    shown = "".join(output.get("data", {}).get("text/plain", "") for cell in notebook.cells
                    if cell.cell_type == "code" for output in cell.get("outputs", []))
    return printed(notebook), shown


def test_the_verdict_notebook_checks_a_completed_sweep(complete):
    base, _ = complete
    text, shown = executed("08_decoupling_verdict", base)
    assert f"79 finished runs in ../results/{SWEEP}/runs.csv" in text
    assert "paper recipe: claim" in text and "symbreak recipe: claim" in text  # both arms judged
    assert "checked: 79 rows; criteria 2 and 3 recomputed from runs.csv" in text
    assert "d6 MoVE x16: worth a dense model" in shown  # criterion 4 assessed, with d8 in the law


def test_the_secondary_notebook_checks_a_completed_sweep(complete):
    base, _ = complete
    text, shown = executed("09_decoupling_secondary", base)
    assert f"79 finished runs in ../results/{SWEEP}/runs.csv" in text
    assert "checked: 79 rows," in text  # the check cell ran to its end
    assert re.search(r"MoVE x4 +dense w240 +total params", shown)  # the matched table shows it
    assert f"rate {CHOSEN_RATE:g}: the lowest dev val_bpb of 3 rates (0.005, 0.01, 0.02)" in text


@pytest.mark.parametrize("name", ["08_decoupling_verdict", "09_decoupling_secondary"])
def test_the_notebooks_check_a_sweep_midway(midway, name):
    base, kinds = midway
    text, _ = executed(name, base)
    rows = len(load_runs(SWEEP, base / "results"))
    assert rows == len(committed_rows()) + len(kinds)
    assert f"{rows} finished runs in ../results/{SWEEP}/runs.csv" in text
    assert f"checked: {rows} rows" in text  # the check cell ran to its end
