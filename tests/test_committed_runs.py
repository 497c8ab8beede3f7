"""The committed results still resolve under the current code: every row of every
results/<sweep>/runs.csv names a run whose recorded config hashes to its id, and the sweep's
sweep.toml still plans that run under that id, with the variant, groups and role the row has.
A refactor that changed a config hash, a variant's spelling or a run's role fails here."""

import csv
import json
from pathlib import Path

import pytest

from movelab.config import ModelConfig
from movelab.schema import role_from_groups
from movelab.sweep import consolidate, load_sweep
from movelab.training.config import RunConfig

RESULTS = Path(__file__).resolve().parents[1] / "results"
TABLES = sorted(RESULTS.glob("*/runs.csv"))


def rows(table: Path) -> list[dict]:
    with open(table) as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("table", TABLES, ids=lambda p: p.parent.name)
def test_every_committed_row_is_the_run_its_config_hashes_to(table):
    found = rows(table)
    assert found, f"{table} has no rows"
    for row in found:
        result = json.loads((table.parent / "runs" / row["run_id"] / "result.json").read_text())
        run = RunConfig.from_dict(result["config"])
        assert run.hash() == result["config_hash"] == row["run_id"]
        assert ModelConfig.from_dict(result["config"]["model"]).label == row["label"]


@pytest.mark.parametrize("folder", sorted(p for p in RESULTS.glob("*/configs")),
                         ids=lambda p: p.parent.name)
def test_every_committed_run_config_trains_the_runs_beside_it(folder):
    """Results that are runs, not a sweep (lazy-update, precision): configs/*.json hash to
    exactly the recorded runs of runs/, each in the folder its recorded config hashes to."""
    configs = {RunConfig.from_dict(json.loads(path.read_text())["config"]).hash()
               for path in folder.glob("*.json")}
    recorded = set()
    for path in (folder.parent / "runs").glob("*/result.json"):
        result = json.loads(path.read_text())
        assert RunConfig.from_dict(result["config"]).hash() == path.parent.name
        recorded.add(path.parent.name)
    assert recorded and recorded == configs


@pytest.mark.parametrize("table", [t for t in TABLES if (t.parent / "sweep.toml").exists()],
                         ids=lambda p: p.parent.name)
def test_every_committed_sweep_still_plans_its_rows(table):
    planned = {p.run_id: p for p in load_sweep(table.parent.name, RESULTS).runs}
    for row in rows(table):
        assert row["run_id"] in planned, f"{row['run_id']} ({row['variant']}) is no longer planned"
        run = planned[row["run_id"]]
        assert (run.variant, ";".join(run.groups)) == (row["variant"], row["groups"])
        assert run.role == row.get("role", role_from_groups(row["groups"]))


@pytest.mark.parametrize("table", [t for t in TABLES if (t.parent / "sweep.toml").exists()],
                         ids=lambda p: p.parent.name)
def test_collecting_a_committed_sweep_again_rewrites_its_rows(table, tmp_path):
    """`sweep collect` on a copy of the sweep's result.json files gives the committed rows,
    value for value, in every column the committed table has (older tables lack later ones)."""
    name = table.parent.name
    (tmp_path / name).mkdir()
    (tmp_path / name / "sweep.toml").write_text((table.parent / "sweep.toml").read_text())
    for row in rows(table):
        run_dir = tmp_path / name / "runs" / row["run_id"]
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(
            (table.parent / "runs" / row["run_id"] / "result.json").read_text())
    consolidate(load_sweep(name, tmp_path))
    again = rows(tmp_path / name / "runs.csv")
    committed = rows(table)
    assert [{k: r[k] for k in committed[0]} for r in again] == committed
