"""The pre-registered decoupling sweeps expand to the design their PLAN.md fixes: the seeded cells
at d4 and d6 with 3 seeds, one token budget per depth (so a seed's runs share batches), claims on
the test split and only the dense control's learning-rate runs on dev, and roles that keep the
second recipe arm and the dense control out of the paper's main rows."""

from pathlib import Path

import pytest

from movelab.sweep import load_sweep

RESULTS = Path(__file__).resolve().parents[1] / "results"
SEEDED = {"standard", "standard +g0", "move x1", "move x4", "move x16", "move x1 symbreak",
          "move x4 symbreak", "move x16 symbreak"}


def cells(sweep):
    seeds = {}
    for planned in sweep.runs:
        seeds.setdefault((planned.run.model.depth, planned.variant), set()).add(
            planned.run.train.seed)
    return seeds


@pytest.mark.parametrize("name, seeded", [("decouple-prose", SEEDED | {"lave x1"}),
                                          ("decouple-image", SEEDED)])
def test_the_seeded_cells_have_three_seeds_and_one_budget_per_depth(name, seeded):
    sweep = load_sweep(name, RESULTS)
    assert (RESULTS / name / "PLAN.md").is_file()
    seeds = cells(sweep)
    for depth in (4, 6):
        for variant in seeded:
            assert seeds[depth, variant] == {0, 1, 2}, (depth, variant)
    for depth in {p.run.model.depth for p in sweep.runs}:
        budgets = {p.run.train.tokens for p in sweep.runs if p.run.model.depth == depth}
        assert len(budgets) == 1, depth  # every run at a depth sees the same batches per seed


def test_claims_score_the_test_split_and_only_the_dense_learning_rates_use_dev():
    sweep = load_sweep("decouple-prose", RESULTS)
    dev = [p for p in sweep.runs if p.run.train.eval_split == "dev"]
    assert {p.run.model.width for p in dev} == {240}
    assert sorted(p.run.train.lr for p in dev) == [0.005, 0.01, 0.02]
    assert all(p.role == "control" for p in dev)
    assert all(p.run.train.eval_split == "test" for p in sweep.runs if p not in dev)


@pytest.mark.parametrize("name", ["decouple-prose", "decouple-image"])
def test_roles_keep_the_second_arm_out_of_the_main_rows(name):
    sweep = load_sweep(name, RESULTS)
    for planned in sweep.runs:
        if "symbreak" in planned.variant:
            assert planned.role == "control"
        elif planned.run.model.width == 240:
            assert planned.role == "control"  # the dense control
        else:
            assert planned.role == ("main" if planned.run.train.seed == 0 else "seed")
