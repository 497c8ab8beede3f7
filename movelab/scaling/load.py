"""results/<sweep>/runs.csv as a typed DataFrame, with the derived columns every analysis uses.

Derived columns:
  path_label   the variant's display name (movelab.variant): "standard", "LaVE x1",
               "LaVE x1 +g0", "MoVE x4", "MoVE x4 g0=1"; a variant written as a table in
               sweep.toml keeps its label ("standard w256 (params of move x4)")
  role         what the analysis uses the run for (movelab.schema.ROLES), from `groups` for
               rows written before runs.csv had the column
  memory_params
               LaVE tables + MoVE bank (lookups, zero FLOPs), = params_memory
  params_active_no_routers
               params_active - params_gates_routers (where runs.csv has that column): the
               active parameters without LaVE's gates and MoVE's routers, which grow with M

`load_curves` reads the runs' evaluation curves (results/<sweep>/runs/<run_id>/curve.csv) into
one long table: run_id, path_label, depth, slots, seed, then per evaluation step, tokens, epoch
(epochs seen so far: tokens / tokens_seen x the run's epochs), train_loss and val_bpb (image
runs: bits_per_token), and the
memory diagnostics of movelab.diagnostics (slot_effective_count, gate statistics, val_bpb_q1-q5)
where a run recorded them (NaN elsewhere).

`load_frequency_bpb` reads each run's final val BPB by token-frequency bucket: from result.json's
"diagnostics", or for a run whose loop did not record them (standard models) from the
diagnostics.json that `movelab inspect --recompute --save` computed from its model.pt.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from movelab.schema import (COLUMN_TYPES, DIAGNOSTIC_CURVE_COLUMNS, RESULT, SAVED_DIAGNOSTICS,
                            columns_of, role_from_groups)
from movelab.variant import display_name

# Columns the analysis reads; runs.csv (movelab.schema, results/README.md) has these and more.
REQUIRED_COLUMNS = ("groups", "variant", "value_path", "depth", "width", "slots", "density",
                    "gate_standard", "seed", "params_total", "params_active", "params_memory",
                    "flops_per_token_train", "train_flops", "val_bpb")


def find_results_dir(start: Path | str = ".") -> Path:
    """The results folder to read when none is given: `results/` in `start` (the current
    directory) or in the nearest folder above it that has one (a notebook runs in notebooks/),
    as a path from `start`; `start`/results when none has. Never the package's location: the
    package may be installed anywhere."""
    base = Path(start)
    for up in range(len(base.resolve().parts)):
        candidate = base.joinpath(*[".."] * up, "results")
        if candidate.is_dir():
            return candidate
    return base / "results"


def find_reference_dir(results_dir: Path | str | None = None) -> Path:
    """The repository's reference/ (Chinchilla Fig. 4 points, published fits): beside
    `results_dir` (by default `find_results_dir()`)."""
    return Path(find_results_dir() if results_dir is None else results_dir).parent / "reference"


def runs_csv_path(sweep: str = "cpu-text", results_dir: Path | str | None = None) -> Path:
    return Path(find_results_dir() if results_dir is None else results_dir) / sweep / "runs.csv"


def load_runs(sweep: str = "cpu-text", results_dir: Path | str | None = None) -> pd.DataFrame:
    """One row per finished run of `sweep` in `results_dir` (default: `find_results_dir()`),
    typed, with the derived columns above."""
    path = runs_csv_path(sweep, results_dir)
    if not path.exists():
        raise FileNotFoundError(f"no runs table at {path}: run `movelab sweep run {sweep}` "
                                "(it writes runs.csv as runs finish) or check --results-dir")
    df = pd.read_csv(path, dtype={c: str for c in columns_of("text")})
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; regenerate it with "
                         f"`movelab sweep collect {sweep}`")
    return with_derived_columns(_typed(df))


CURVE_COLUMNS = ("run_id", "path_label", "depth", "slots", "seed", "step", "tokens", "epoch",
                 "train_loss", "val_bpb")
CURVE_METRICS = ("val_bpb", "bits_per_token")  # the text and image tasks' validation metrics


def load_curves(df: pd.DataFrame, sweep: str = "cpu-text",
                results_dir: Path | str | None = None) -> pd.DataFrame:
    """The curve.csv of every run of `df` (rows of load_runs), stacked in the order of `df`."""
    curves = []
    for run in df.itertuples():
        path = runs_csv_path(sweep, results_dir).parent / "runs" / run.run_id / "curve.csv"
        if not path.exists():
            raise FileNotFoundError(
                f"no curve for run {run.run_id} at {path}: the runs/ folders must sit beside "
                f"runs.csv (check --results-dir), or delete that run's result.json and rerun "
                f"`movelab sweep run {sweep}`")
        curve = pd.read_csv(path)
        curves.append(curve.assign(run_id=run.run_id, path_label=run.path_label,
                                   depth=run.depth, slots=run.slots, seed=run.seed,
                                   epoch=curve["tokens"] / run.tokens_seen * run.epochs))
    if not curves:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    curves = pd.concat(curves, ignore_index=True)
    metrics = [c for c in CURVE_METRICS if c in curves.columns]  # val_bpb, or an image metric
    recorded = [c for c in DIAGNOSTIC_CURVE_COLUMNS if c in curves.columns]
    return curves[list(CURVE_COLUMNS[:-1]) + metrics + recorded]


FREQUENCY_COLUMNS = ("run_id", "path_label", "depth", "seed", "bucket", "occurrences_min",
                     "occurrences_max", "positions", "val_bpb", "source")


def run_diagnostics(run_dir: Path | str) -> tuple[dict | None, str]:
    """A finished run's diagnostics and where they come from: result.json's, else the
    diagnostics.json computed from its model.pt, else (None, "")."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULT).exists():
        raise FileNotFoundError(
            f"no {RESULT} at {run_dir}: the runs/ folders must sit beside runs.csv (check "
            "--results-dir), or rerun `movelab sweep collect` after restoring the run")
    recorded = json.loads((run_dir / RESULT).read_text()).get("diagnostics")
    if recorded is not None:
        return recorded, RESULT
    if (run_dir / SAVED_DIAGNOSTICS).exists():
        return json.loads((run_dir / SAVED_DIAGNOSTICS).read_text())["diagnostics"], SAVED_DIAGNOSTICS
    return None, ""


def with_train_settings(df: pd.DataFrame, sweep: str = "cpu-text",
                        results_dir: Path | str | None = None,
                        fields: tuple[str, ...] = ("lr",)) -> pd.DataFrame:
    """`df` with a column `train_<field>` per field: each run's training setting as its
    result.json records it (config.train), where runs.csv has only the recipe's fields that
    differ from their defaults. result.json leaves those out too: a recipe field at its default
    reads None here (the split: read it from the recipe, as `secondary.scored_on_test` does)."""
    settings = []
    for run in df.itertuples():
        path = runs_csv_path(sweep, results_dir).parent / "runs" / run.run_id / RESULT
        if not path.exists():
            raise FileNotFoundError(f"no {RESULT} for run {run.run_id} at {path}: the runs/ "
                                    "folders must sit beside runs.csv (check --results-dir)")
        train = json.loads(path.read_text())["config"]["train"]
        settings.append({f"train_{field}": train.get(field) for field in fields})
    return df.assign(**pd.DataFrame(settings, index=df.index,
                                    columns=[f"train_{field}" for field in fields]))


def load_frequency_bpb(df: pd.DataFrame, sweep: str = "cpu-text",
                       results_dir: Path | str | None = None) -> pd.DataFrame:
    """One row per (run of `df`, frequency bucket): the final val BPB of the validation
    positions whose input token is in that bucket of training occurrences (1 the rarest; the
    buckets are equal shares of the same positions for every run at a depth). Runs with no
    diagnostics anywhere are left out."""
    rows = []
    for run in df.itertuples():
        found, source = run_diagnostics(runs_csv_path(sweep, results_dir).parent / "runs" / run.run_id)
        for bucket in (found or {}).get("val_bpb_by_frequency", []):
            rows.append({"run_id": run.run_id, "path_label": run.path_label, "depth": run.depth,
                         "seed": run.seed, **{k: bucket[k] for k in FREQUENCY_COLUMNS[4:9]},
                         "source": source})
    return pd.DataFrame(rows, columns=FREQUENCY_COLUMNS)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Each column as its type in movelab.schema (a column it does not list: a whole number)."""
    df = df.copy()
    for column in df.columns:
        kind = COLUMN_TYPES.get(column, "int")
        if kind == "text":
            df[column] = df[column].fillna("").astype(str)
        elif kind == "float":
            df[column] = df[column].astype(float)
        elif kind == "bool":
            df[column] = df[column].map(_as_bool).astype(bool)
        elif kind == "time":
            df[column] = pd.to_datetime(df[column], utc=True)
        else:
            df[column] = df[column].astype("int64")
    return df


def _as_bool(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"expected True or False, got {value!r}")
    return text == "true"


def with_derived_columns(df: pd.DataFrame) -> pd.DataFrame:
    if "role" not in df.columns:  # written before the column: from the group names
        df = df.assign(role=df["groups"].map(role_from_groups))
    if "params_gates_routers" in df.columns:
        df = df.assign(params_active_no_routers=df["params_active"] - df["params_gates_routers"])
    return df.assign(path_label=df["variant"].map(display_name),
                     memory_params=df["params_memory"])
