"""results/<sweep>/runs.csv as a typed DataFrame, with the derived columns every analysis uses.

Derived columns:
  path_label   the variant with its value path spelled as in the paper: "standard", "LaVE x1",
               "LaVE x1 +g0", "MoVE x4", "MoVE x4 g0=1"; a variant written as a table in
               sweep.toml keeps its label ("standard w256 (params of move x4)")
  in_grid, in_seeds, is_control
               whether the sweep group "grid", "seeds" or "controls" lists the run
  memory_params
               LaVE tables + MoVE bank (lookups, zero FLOPs), = params_memory
  params_active_no_routers
               params_active - params_gates_routers (where runs.csv has that column): the
               active parameters without LaVE's gates and MoVE's routers, which grow with M

`load_curves` reads the runs' evaluation curves (results/<sweep>/runs/<run_id>/curve.csv) into
one long table: run_id, path_label, depth, seed, then per evaluation step, tokens, epoch
(epochs seen so far: tokens / tokens_seen x the run's epochs), train_loss and val_bpb.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

import movelab

REPO_ROOT = Path(movelab.__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "results"
# Columns the analysis reads; runs.csv (results/README.md) has these and more.
REQUIRED_COLUMNS = ("groups", "variant", "value_path", "depth", "width", "slots", "density",
                    "gate_standard", "seed", "params_total", "params_active", "params_memory",
                    "flops_per_token_train", "train_flops", "val_bpb")
# Read as text even when they look like numbers (a hash of digits, "1e5..." ids).
TEXT_COLUMNS = ("run_id", "task", "groups", "variant", "label", "value_path", "git_commit",
                "torch_version", "corpus", "corpus_hash", "device", "precision", "recipe")
FLOAT_COLUMNS = ("density", "epochs", "val_bpb", "val_bpb_best", "val_loss", "train_loss",
                 "wall_seconds", "tokens_per_second",
                 # memory runs' diagnostics, empty (NaN) on other rows
                 "slot_effective_count", "g0_mean", "gate_std_across_slots",
                 "gate_std_across_tokens",
                 # image runs only, empty (NaN) on text rows
                 "bits_per_token", "fid", "class_accuracy", "fid_samples", "cfg_scale")
BOOL_COLUMNS = ("gate_standard", "git_dirty")
TIME_COLUMNS = ("started_at", "ended_at")
PATH_NAMES = {"standard": "standard", "lave": "LaVE", "move": "MoVE"}


def runs_csv_path(sweep: str = "cpu-text", results_dir: Path | str = RESULTS_DIR) -> Path:
    return Path(results_dir) / sweep / "runs.csv"


def load_runs(sweep: str = "cpu-text", results_dir: Path | str = RESULTS_DIR) -> pd.DataFrame:
    """One row per finished run of `sweep`, typed, with the derived columns above."""
    path = runs_csv_path(sweep, results_dir)
    if not path.exists():
        raise FileNotFoundError(f"no runs table at {path}: run `movelab sweep run {sweep}` "
                                "(it writes runs.csv as runs finish) or check --results-dir")
    df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; regenerate it with "
                         f"`movelab sweep collect {sweep}`")
    return with_derived_columns(_typed(df))


CURVE_COLUMNS = ("run_id", "path_label", "depth", "seed", "step", "tokens", "epoch", "train_loss",
                 "val_bpb")


def load_curves(df: pd.DataFrame, sweep: str = "cpu-text",
                results_dir: Path | str = RESULTS_DIR) -> pd.DataFrame:
    """The curve.csv of every run of `df` (rows of load_runs), stacked in the order of `df`."""
    curves = []
    for run in df.itertuples():
        path = Path(results_dir) / sweep / "runs" / run.run_id / "curve.csv"
        if not path.exists():
            raise FileNotFoundError(
                f"no curve for run {run.run_id} at {path}: the runs/ folders must sit beside "
                f"runs.csv (check --results-dir), or delete that run's result.json and rerun "
                f"`movelab sweep run {sweep}`")
        curve = pd.read_csv(path)
        curves.append(curve.assign(run_id=run.run_id, path_label=run.path_label,
                                   depth=run.depth, seed=run.seed,
                                   epoch=curve["tokens"] / run.tokens_seen * run.epochs))
    if not curves:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(curves, ignore_index=True)[list(CURVE_COLUMNS)]


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for column in df.columns:
        if column in TEXT_COLUMNS:
            df[column] = df[column].fillna("").astype(str)
        elif column in FLOAT_COLUMNS:
            df[column] = df[column].astype(float)
        elif column in BOOL_COLUMNS:
            df[column] = df[column].map(_as_bool).astype(bool)
        elif column in TIME_COLUMNS:
            df[column] = pd.to_datetime(df[column], utc=True)
        else:  # depth, width, ..., params_*, flops_*, tokens, steps, threads: whole numbers
            df[column] = df[column].astype("int64")
    return df


def _as_bool(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"expected True or False, got {value!r}")
    return text == "true"


def path_label(variant: str) -> str:
    """'move x4 g0=1' -> 'MoVE x4 g0=1', 'lave x1' -> 'LaVE x1'; other text is kept."""
    match = re.match(r"(standard|lave|move)\b", variant)
    return PATH_NAMES[match.group(1)] + variant[match.end():] if match else variant


def with_derived_columns(df: pd.DataFrame) -> pd.DataFrame:
    groups = df["groups"].str.split(";").apply(set)
    if "params_gates_routers" in df.columns:
        df = df.assign(params_active_no_routers=df["params_active"] - df["params_gates_routers"])
    return df.assign(
        path_label=df["variant"].map(path_label),
        in_grid=groups.apply(lambda g: "grid" in g),
        in_seeds=groups.apply(lambda g: "seeds" in g),
        is_control=groups.apply(lambda g: "controls" in g),
        memory_params=df["params_memory"],
    )


def label_sort_key(label: str) -> tuple:
    """Reading order: standard, LaVE by density, MoVE by density, then the same for labels with
    anything after the density (ablations, controls), then any other label."""
    match = re.fullmatch(r"(standard|LaVE|MoVE)(?: x([\d.]+))?(.*)", label)
    if not match:
        return (True, len(PATH_NAMES), 0.0, label)
    rank = list(PATH_NAMES.values()).index(match[1])
    return (bool(match[3]), rank, float(match[2] or 0), label)


def label_order(labels) -> list[str]:
    """The distinct labels of `labels` in reading order (label_sort_key)."""
    return sorted(set(labels), key=label_sort_key)
