"""What a run leaves on disk: result.json, curve.csv, checkpoint.pt and model.pt (the final
weights), each written atomically (temporary file, then rename), plus the environment it ran in."""

from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from movelab.data import cache
from movelab.training.device import host_allocator
from movelab.schema import (CURVE_COLUMNS, RESULT, SAVED_DIAGNOSTICS,  # noqa: F401 (the
                            curve_columns)  # record's file names and columns; the loop asks record)

CURVE, CHECKPOINT, MODEL = "curve.csv", "checkpoint.pt", "model.pt"
# RESULT, and SAVED_DIAGNOSTICS: diagnostics computed after the run from its model.pt
# (`movelab inspect --save`) for runs whose loop recorded none, beside result.json, never in it


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the movelab source tree, or (None, None) outside a git checkout."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=source, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(status.strip())


def environment() -> dict:
    commit, dirty = git_state()
    return {"git_commit": commit, "git_dirty": dirty, "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "hostname": platform.node(),
            "host_allocator": host_allocator()}


def write_result(out_dir: Path, result: dict) -> None:
    cache.write_json_atomically(out_dir / RESULT, result, indent=1)


def write_curve(out_dir: Path, rows: list[dict], columns: tuple[str, ...] = CURVE_COLUMNS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    cache.write_atomically(out_dir / CURVE, buffer.getvalue().encode())


class RecordError(ValueError):
    """A file of a run that cannot be read back as what it should be; the message says which."""


# what a checkpoint holds: its keys and their types (data_rng and loop_state are JSON text)
CHECKPOINT_KEYS = {"config_hash": str, "model": dict, "optimizers": list, "data_rng": str,
                   "loop_state": str}
LOOP_STATE_KEYS = {"step": int, "curve": list, "wall_seconds": (int, float), "started_at": str,
                   "train_losses": list, "environment": dict}


def save_tensors(path: Path, value) -> None:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    cache.write_atomically(path, buffer.getvalue())


def save_checkpoint(out_dir: Path, state: dict) -> None:
    save_tensors(out_dir / CHECKPOINT, state)


def load_checkpoint(out_dir: Path) -> dict:
    """The checkpoint in `out_dir`, every field checked, data_rng and loop_state parsed; a
    truncated, empty, foreign or incomplete file raises RecordError."""
    path = out_dir / CHECKPOINT
    try:
        # weights_only: tensors, numbers, strings and containers; nothing executable is unpickled
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file (EOF, pickle, zip)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecordError(f"{path} is not a readable checkpoint ({reason[:160]})") from None
    try:
        _check_fields(saved, CHECKPOINT_KEYS)
        saved = {**saved, "data_rng": json.loads(saved["data_rng"]),
                 "loop_state": json.loads(saved["loop_state"])}
        _check_fields(saved["loop_state"], LOOP_STATE_KEYS)
        if not isinstance(saved["data_rng"], dict):
            raise ValueError("data_rng is not a generator state")
    except (ValueError, TypeError) as err:
        raise RecordError(f"{path} is not a complete movelab checkpoint ({err})") from None
    return saved


def _check_fields(value, fields: dict) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"a {type(value).__name__}, not a table")
    missing = [k for k in fields if k not in value]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    wrong = [k for k, kind in fields.items() if not isinstance(value[k], kind)
             or isinstance(value[k], bool)]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} of the wrong type")


def read_result(path: Path) -> dict:
    """A result.json read back; RecordError when it is truncated or not a run's record."""
    try:
        result = json.loads(Path(path).read_text())
        _check_fields(result, {"config": dict, "config_hash": str})
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise RecordError(f"{path} is not a readable result record ({err}); restore it, or "
                          "delete it and rerun the run") from None
    return result


def result_summary(result: dict) -> str:
    """The headline numbers of a run's record, e.g. 'val_bpb 2.3061 (best 2.3050)'."""
    if result.get("task") == "image":
        return (f"bits_per_token {result['bits_per_token']:.4f}, FID {result['fid']:.2f} and "
                f"class accuracy {result['class_accuracy']:.3f} on {result['fid_samples']:,} "
                f"samples at cfg scale {result['cfg_scale']:g}")
    return f"val_bpb {result['val_bpb']:.4f} (best {result['val_bpb_best']:.4f})"



def remove_run(out_dir: Path, also: tuple[str, ...] = ()) -> None:
    """Delete the record and checkpoint of the run in `out_dir`, and the files named in `also`
    (train --force, once the new run has passed its checks)."""
    for name in (RESULT, CURVE, CHECKPOINT, *also):
        (out_dir / name).unlink(missing_ok=True)


def remove_partials(out_dir: Path) -> None:
    """Delete what killed writers left: `.NAME.partial-*` beside result.json, curve.csv,
    checkpoint.pt and run.json (call it only while holding the folder's claim)."""
    for path in out_dir.glob(".*.partial-*"):
        if not path.name.startswith(".lock."):  # a claim being placed (movelab.training.claim)
            path.unlink(missing_ok=True)
