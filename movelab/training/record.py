"""What a run leaves on disk: result.json, curve.csv and checkpoint.pt, each written atomically
(temporary file, then rename), plus the environment it ran in."""

from __future__ import annotations

import csv
import io
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from movelab.data.cache import write_json_atomically

RESULT, CURVE, CHECKPOINT = "result.json", "curve.csv", "checkpoint.pt"
# lr_scale: the schedule's multiplier of every peak learning rate at that step; the last column
# is the task's validation metric: val_bpb (text) or bits_per_token (image)
CURVE_COLUMNS = ("step", "tokens", "flops", "lr_scale", "train_loss", "val_loss", "val_bpb")


def curve_columns(metric: str = "val_bpb") -> tuple[str, ...]:
    return (*CURVE_COLUMNS[:-1], metric)


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
            "python_version": platform.python_version(), "device": "cpu",
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "hostname": platform.node()}


def write_result(out_dir: Path, result: dict) -> None:
    write_json_atomically(out_dir / RESULT, result, indent=1)


def write_curve(out_dir: Path, rows: list[dict], columns: tuple[str, ...] = CURVE_COLUMNS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _replace(out_dir / CURVE, buffer.getvalue().encode())


def save_checkpoint(out_dir: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _replace(out_dir / CHECKPOINT, buffer.getvalue())


def load_checkpoint(out_dir: Path) -> dict:
    # weights_only: tensors, numbers, strings and containers; nothing executable is unpickled
    return torch.load(out_dir / CHECKPOINT, map_location="cpu", weights_only=True)


def _replace(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.partial-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
