"""`movelab inspect --recompute`: every slot diagnostic of a finished text run, recomputed from
its saved weights (model.pt) and its data; `--save` keeps them in the run's diagnostics.json
(`save_diagnostics`), so that a run whose loop did not record them (a standard model: BPB by
token frequency) can be compared with the memory runs from committed files. It sits above the training loop, whose data
preparation and file names it uses; movelab.diagnostics holds the measures themselves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from movelab import diagnostics
from movelab.model import GPT
from movelab.training.config import RunConfig
from movelab.data import cache
from movelab.training.record import MODEL, RESULT, SAVED_DIAGNOSTICS, environment
from movelab.training.tasks import prepare_data


def inspect_run(run_dir, cache_dir=None) -> dict:
    """Recompute every diagnostic of a finished run from its model.pt (and its data, from the
    cache): what `movelab inspect --recompute` prints."""
    run_dir = Path(run_dir)
    result = json.loads((run_dir / RESULT).read_text())
    run = RunConfig.from_dict(result["config"])
    if run.task != "text":
        raise ValueError(f"{run_dir} is an image run; the memory diagnostics cover text runs")
    model = GPT(run.model)
    model.load_state_dict(torch.load(run_dir / MODEL, map_location="cpu", weights_only=True))
    data = prepare_data(run, cache_dir)
    counts = diagnostics.training_counts(data) * (result["tokens_seen"] / data.epoch_tokens)
    x, y = data.val_windows(run.model.seq_len, diagnostics.DIAGNOSTIC_WINDOWS)
    return diagnostics.memory_diagnostics(model, diagnostics.initial_memory_rows(run), data,
                                          counts, x, y)


def save_missing_diagnostics(runs_dir, cache_dir=None, log=print) -> list[str]:
    """For every finished text run in the folder `runs_dir` (a sweep's runs/) whose result.json
    records no diagnostics, that has no diagnostics.json yet and still has its model.pt (a
    standard model): compute them (`inspect_run`) and save them (`save_diagnostics`). Returns
    the run ids saved."""
    saved = []
    for run_dir in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
        if not (run_dir / RESULT).exists() or (run_dir / SAVED_DIAGNOSTICS).exists() \
                or not (run_dir / MODEL).exists():
            continue
        result = json.loads((run_dir / RESULT).read_text())
        if result.get("diagnostics") is not None or result.get("task", "text") != "text":
            continue
        save_diagnostics(run_dir, inspect_run(run_dir, cache_dir))
        log(f"  diagnostics of {run_dir.name} ({result.get('label', '')}) computed from {MODEL}")
        saved.append(run_dir.name)
    return saved


def save_diagnostics(run_dir, found: dict) -> Path:
    """Write `found` (inspect_run's diagnostics) to run_dir/diagnostics.json with what they were
    computed from: the sha256 of model.pt and the environment (git commit) that computed them."""
    run_dir = Path(run_dir)
    digest = hashlib.sha256((run_dir / MODEL).read_bytes()).hexdigest()
    path = run_dir / SAVED_DIAGNOSTICS
    cache.write_json_atomically(path, {"diagnostics": found, "computed_from": MODEL,
                                       "model_sha256": digest, "environment": environment()},
                                indent=1)
    return path
