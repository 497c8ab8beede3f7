"""One results schema: results/README.md's tables are movelab.schema's, the sweep writes
runs.csv in its columns, the loader reads each column as its type, a run's curve.csv has its
curve columns, and every committed runs.csv is the schema's columns (older ones lacking only
columns added since)."""

import csv
from pathlib import Path

import pandas as pd

from movelab import schema
from movelab.scaling.load import load_runs

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_tables_are_the_schemas():
    readme = (ROOT / "results" / "README.md").read_text()
    for table in (schema.RUNS_TABLE, schema.CURVE_TABLE):
        assert schema.markdown_table(table) in readme, (
            "results/README.md disagrees with movelab/schema.py: paste in the output of "
            "`python -m movelab.schema`")


def test_committed_tables_are_the_schemas_columns_in_order():
    for path in sorted((ROOT / "results").glob("*/runs.csv")):
        with open(path) as file:
            header = next(csv.reader(file))
        assert header == [c for c in schema.RUNS_COLUMNS if c in header], path
        assert set(header) <= set(schema.RUNS_COLUMNS), path
    for path in sorted((ROOT / "results").glob("*/runs/*/curve.csv"))[:20]:
        with open(path) as file:
            header = next(csv.reader(file))
        assert tuple(header[:len(schema.CURVE_COLUMNS) - 1]) == schema.CURVE_COLUMNS[:-1]
        assert header[len(schema.CURVE_COLUMNS) - 1] in ("val_bpb", "bits_per_token")


def test_the_loader_reads_every_column_as_its_type(tmp_path):
    samples = {"text": "0123", "int": "7", "float": "", "bool": "True",
               "time": "2026-12-01T10:00:00+00:00"}
    row = {c: samples[schema.COLUMN_TYPES[c]] for c in schema.RUNS_COLUMNS}
    row |= {"groups": "grid", "role": "main", "variant": "move x4", "value_path": "move",
            "val_bpb": "2.5"}
    (tmp_path / "s").mkdir()
    pd.DataFrame([row]).to_csv(tmp_path / "s" / "runs.csv", index=False)
    df = load_runs("s", tmp_path)
    types = pd.api.types
    expected = {"text": types.is_string_dtype, "int": types.is_int64_dtype,
                "float": types.is_float_dtype, "bool": types.is_bool_dtype,
                "time": lambda dtype: isinstance(dtype, pd.DatetimeTZDtype)}
    for column in schema.RUNS_COLUMNS:
        assert expected[schema.COLUMN_TYPES[column]](df[column].dtype), column
    assert df["run_id"][0] == "0123" and df["path_label"][0] == "MoVE x4"


def test_a_runs_role_is_the_first_of_its_groups_roles():
    assert schema.role_from_groups("grid;seeds") == "main"
    assert schema.role_from_groups("seeds") == "seed"
    assert schema.role_from_groups("controls") == "control"
    assert schema.role_from_groups("K4-paper") == "other"
    assert schema.run_role(["other", "control", "seed"]) == "seed"
    assert schema.group_role("grid", "control") == "control"  # a declared role wins
