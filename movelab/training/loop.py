"""The training loop: one run from a RunConfig to a result record, resumable at any checkpoint.

One loop for both tasks. The data object (`prepare_data`) serves `train_batch(rng, B, T)`,
`val_windows(T)`, `describe()`, `vocab_size` and `epoch_tokens`, and names its `task`:
  text   movelab.data.TokenData; validation metric val_bpb (bits per byte)
  image  movelab.images.task.ImageTaskData; validation metric bits_per_token (bits per image
         token); after training it samples the model and adds fid, class_accuracy and a
         samples.png
The final weights are kept as model.pt (for sampling and `movelab inspect`). Text runs of a
memory path (LaVE, MoVE) also record movelab.diagnostics: at every evaluation in curve.csv (its
CURVE_COLUMNS) and in full in result.json ("diagnostics").
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from movelab import diagnostics
from movelab.accounting import analytic_costs
from movelab.config import ConfigError
from movelab.data import prepare_text_data
from movelab.model import GPT
from movelab.training import device as chosen_device
from movelab.training import distributed, record
from movelab.training.config import RunConfig
from movelab.training.optim import build_optimizers, clip_gradients, lr_multiplier, set_lr

CHECKPOINT_SECONDS = 120.0  # besides every validation pass
MODEL = "model.pt"  # final weights
METRICS = {"text": "val_bpb", "image": "bits_per_token"}  # each task's validation metric
SHORT_NAMES = {"val_bpb": "bpb", "bits_per_token": "bits"}


class RunError(Exception):
    """A run that cannot start or go on; the message says why and what to do."""


class Interrupted(Exception):
    """The run was stopped (Ctrl-C); its last completed step is checkpointed."""


def prepare_data(run: RunConfig, cache_dir: Path | None = None, progress: bool = False):
    """The run's data: text shards (TokenData) or image codes (ImageTaskData), cached."""
    if run.task == "image":
        from movelab.images.task import prepare_image_data

        return prepare_image_data(run.train.corpus, run.image, cache_dir)
    return prepare_text_data(run.train.corpus, run.model.vocab_size, cache_dir, progress=progress,
                             val_fraction=run.train.val_fraction)


def evaluate(model: GPT, data, x: torch.Tensor, y: torch.Tensor,
             rows: int | None = None) -> tuple[float, float]:
    """(the task's metric, nats per token) over fixed validation windows. Nats per token
    averages over every target. Text: bits per byte, summed nats over the target tokens divided
    by ln 2 times the UTF-8 bytes they decode to (SPEC); document separators decode to no bytes,
    so they are left out of both sums (as nanochat does). Image: bits per image token, nats per
    token / ln 2 (every target is a code). Under torchrun each rank scores every world_size-th
    batch of windows and the sums are added over the ranks. rows: validation windows per forward
    pass (default: the data's own)."""
    model.eval()
    text = data.task == "text"
    rows = rows or data.eval_batch
    text_nats = all_nats = 0.0
    with torch.no_grad():
        for i in range(distributed.rank() * rows, len(x), distributed.world_size() * rows):
            targets = y[i:i + rows]
            with chosen_device.autocast(x.device):
                nats = model(x[i:i + rows], targets, reduction="none").view(targets.shape)
            all_nats += nats.sum().item()
            if text:
                text_nats += nats[data.target_bytes(targets) > 0].sum().item()
    model.train()
    text_nats, all_nats = distributed.sum_over_ranks(text_nats, all_nats)
    if not text:
        return all_nats / y.numel() / math.log(2), all_nats / y.numel()
    return text_nats / (math.log(2) * data.bytes_of(y)), all_nats / y.numel()


def prepare_out_dir(out_dir: Path, run: RunConfig, *, resume: bool, force: bool) -> bool:
    """Check what `out_dir` holds; return True when there is a checkpoint to resume."""
    result, checkpoint = out_dir / record.RESULT, out_dir / record.CHECKPOINT
    if force:
        if distributed.is_main():  # the files are rank 0's
            for path in (result, checkpoint, out_dir / record.CURVE):
                path.unlink(missing_ok=True)
        return False
    if result.exists():
        raise RunError(f"{out_dir} already holds a finished run ({record.RESULT}); pass --force "
                       "to overwrite it or choose another --out")
    if checkpoint.exists():
        if not resume:
            raise RunError(f"{out_dir} holds an unfinished run; pass --resume to continue it or "
                           "--force to start over")
        return True
    return False


def train(run: RunConfig, out_dir: Path, *, resume: bool = False, force: bool = False,
          progress: bool | None = None, cache_dir: Path | None = None, device: str = "auto",
          compile: bool = False) -> dict:
    """Train `run` and write its record into `out_dir`; returns the result dict. Launched by
    torchrun, every rank calls this with the same arguments: the ranks split each global batch
    (see movelab.training.distributed), all of them resume from the same checkpoint, and rank 0
    alone reports and writes the record. `device`: auto (a GPU when torch sees one), cpu or
    cuda; on CUDA the forward runs in bf16 (movelab.training.device). `compile`: train through
    torch.compile (validation and sampling stay eager)."""
    check_memory_update(run, compile)
    with distributed.process_group(), _sigterm_as_interrupt():
        chosen_device.choose(device)
        return _train(run, Path(out_dir), resume, force, progress, cache_dir, compile)


def check_memory_update(run: RunConfig, compile: bool) -> None:
    """The lazy memory update's row-sparse gradients run eager and in one process: inductor
    cannot compile sparse tensors, and data parallelism over them is untested."""
    if run.train.memory_update == "lazy" and (compile or distributed.launched_world_size() > 1):
        raise ConfigError("--memory-update lazy trains eager and in one process (torch.compile "
                          "cannot compile its row-sparse gradients, and data parallelism over "
                          "them is untested); drop --compile and torchrun, or use "
                          "--memory-update dense")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (kill, SLURM's time limit, a sweep being stopped) ends the run like Ctrl-C: the
    last completed step is checkpointed, so --resume loses nothing."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(run: RunConfig, out_dir: Path, resume: bool, force: bool, progress: bool | None,
           cache_dir: Path | None, compile: bool) -> dict:
    cfg, tcfg = run.model, run.train
    distributed.check_batch_size(tcfg.batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_checkpoint = prepare_out_dir(out_dir, run, resume=resume, force=force)
    bar_on_tty = sys.stderr.isatty() if progress is None else progress
    quiet = not distributed.is_main()  # one rank reports

    with distributed.main_first():  # rank 0 fills the data cache, the others read it
        data = prepare_data(run, cache_dir, progress=bar_on_tty)
    if data.vocab_size != cfg.vocab_size:
        raise ConfigError(f"the tokenizer of {tcfg.corpus} has {data.vocab_size} tokens but the "
                          f"model expects {cfg.vocab_size}; pass --vocab-size {data.vocab_size}")
    metric = METRICS[run.task]
    device = distributed.device()
    val_x, val_y = (t.to(device) for t in data.val_windows(cfg.seq_len))  # fails early if short

    torch.manual_seed(tcfg.seed)
    model = GPT(cfg).to(device)
    optimizers = build_optimizers(model, tcfg)
    rng = np.random.default_rng(tcfg.seed)
    # diagnostics of a text run's memory: its rows as initialised (before a checkpoint loads)
    memory_start = diagnostics.memory_rows(model) if run.task == "text" else None
    if memory_start is not None:
        memory_start = memory_start.detach().clone()
        counts_per_epoch = diagnostics.training_counts(data)
        diagnostic_windows = [t.to(device) for t in data.val_windows(
            cfg.seq_len, diagnostics.DIAGNOSTIC_WINDOWS)]

    def memory_diagnostics() -> dict:
        counts = counts_per_epoch * (state["step"] * tokens_per_step / data.epoch_tokens)
        return diagnostics.memory_diagnostics(model, memory_start, data, counts,
                                              *diagnostic_windows)

    costs = analytic_costs(cfg)
    total_steps = tcfg.total_steps(cfg)
    tokens_per_step = tcfg.batch_size * cfg.seq_len
    eval_steps = {round(total_steps * (i + 1) / tcfg.evals) for i in range(tcfg.evals)}
    state = {"step": 0, "curve": [], "wall_seconds": 0.0, "started_at": record.now(),
             "train_losses": [], "environment": record.environment()}

    if has_checkpoint:
        saved = record.load_checkpoint(out_dir)
        if saved["config_hash"] != run.hash():
            raise RunError(f"{out_dir} holds a checkpoint of a different config "
                           f"({saved['config_hash']}, this one is {run.hash()}); use the same "
                           "flags (or --from its run.json), another --out, or --force")
        model.load_state_dict(saved["model"])
        for optimizer, optimizer_state in zip(optimizers, saved["optimizers"]):
            optimizer.load_state_dict(optimizer_state)
        rng.bit_generator.state = json.loads(saved["data_rng"])
        state = json.loads(saved["loop_state"])
        resumed_under = record.environment()
        if resumed_under["git_commit"] != state["environment"]["git_commit"]:
            state["environment"].setdefault("resumed_under_commits", []).append(
                resumed_under["git_commit"])

    def checkpoint():
        if quiet:
            return
        record.save_checkpoint(out_dir, {
            "config_hash": run.hash(), "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers],
            "data_rng": json.dumps(rng.bit_generator.state), "loop_state": json.dumps(state)})

    if not quiet:
        record.write_json_atomically(out_dir / "run.json", {"config": run.to_dict(),
                                                           "config_hash": run.hash()})
    stepper = distributed.wrap(model)  # the model itself in a single process
    if compile:
        stepper = torch.compile(stepper)
    bar = tqdm(total=total_steps, initial=state["step"], unit="step",
               disable=quiet or not bar_on_tty, dynamic_ncols=True, desc=cfg.label)
    session_start, session_start_step = time.perf_counter(), state["step"]
    last_checkpoint, wall_before = session_start, state["wall_seconds"]
    updating = False
    try:
        while state["step"] < total_steps:
            x, y = data.train_batch(rng, tcfg.batch_size, cfg.seq_len)
            updating = True
            set_lr(optimizers, lr_multiplier(state["step"], total_steps, tcfg))
            with chosen_device.autocast(device):
                loss = stepper(distributed.local_rows(x), distributed.local_rows(y))
            global_loss = distributed.average(loss.detach()).item()  # the same on every rank
            if not math.isfinite(global_loss):
                raise RunError(
                    f"the loss became {global_loss} at step {state['step'] + 1}; "
                    + (f"the last good checkpoint is {out_dir / record.CHECKPOINT} (step "
                       f"{state['curve'][-1]['step']}); " if state["curve"] else "")
                    + "lower --lr / --embedding-lr or raise --warmup-frac and start over (--force)")
            loss.backward()
            clip_gradients(model.parameters(), tcfg.grad_clip)
            for optimizer in optimizers:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            updating = False
            state["train_losses"].append(global_loss)
            state["wall_seconds"] = wall_before + time.perf_counter() - session_start
            bar.update()
            if state["step"] in eval_steps:
                val_metric, val_loss = evaluate(model, data, val_x, val_y, tcfg.eval_batch)
                tokens = state["step"] * tokens_per_step
                state["curve"].append({
                    "step": state["step"], "tokens": tokens,
                    "flops": tokens * costs.flops_per_token_train,
                    "lr_scale": lr_multiplier(state["step"] - 1, total_steps, tcfg),
                    "train_loss": float(np.mean(state["train_losses"])),
                    "val_loss": val_loss, metric: val_metric})
                if memory_start is not None and not quiet:
                    state["curve"][-1].update(diagnostics.curve_fields(memory_diagnostics()))
                state["train_losses"] = []
                rate = (state["step"] - session_start_step) * tokens_per_step / max(
                    1e-9, time.perf_counter() - session_start)
                bar.set_postfix(loss=f"{state['curve'][-1]['train_loss']:.3f}",
                                **{SHORT_NAMES[metric]: f"{val_metric:.4f}"}, tok_s=f"{rate:,.0f}")
                if not (quiet or bar_on_tty):
                    eta = (total_steps - state["step"]) * tokens_per_step / max(rate, 1e-9)
                    print(f"{cfg.label}: step {state['step']}/{total_steps} tokens {tokens:,} "
                          f"train_loss {state['curve'][-1]['train_loss']:.4f} {metric} "
                          f"{val_metric:.4f} {rate:,.0f} tok/s eta {eta:.0f}s", flush=True)
                checkpoint()
                last_checkpoint = time.perf_counter()
            elif time.perf_counter() - last_checkpoint > CHECKPOINT_SECONDS:
                checkpoint()
                last_checkpoint = time.perf_counter()
    except KeyboardInterrupt:
        if not updating:  # between steps the state is consistent: keep every completed step
            checkpoint()
        raise Interrupted(f"stopped at step {state['step']} of {total_steps}; continue with the "
                          f"same command plus --resume (out: {out_dir})") from None
    finally:
        bar.close()

    final = state["curve"][-1]
    tokens_seen = state["step"] * tokens_per_step
    if run.task == "image":  # metrics of the image task; bits per byte has no meaning here
        metrics = {"val_bpb": None, "val_bpb_best": None, "bits_per_token": final[metric],
                   "bits_per_token_best": min(r[metric] for r in state["curve"])}
    else:
        metrics = {"val_bpb": final["val_bpb"],
                   "val_bpb_best": min(r["val_bpb"] for r in state["curve"])}
    result = {
        "run_id": run.hash(), "config_hash": run.hash(), "config": run.to_dict(), "task": run.task,
        "label": cfg.label, "value_path": cfg.value_path, "depth": cfg.depth, "width": cfg.width,
        "slots": cfg.slots or 0, "density": cfg.density, "gate_standard": cfg.gate_standard,
        "seed": tcfg.seed, **costs.to_dict(),
        "tokens_seen": tokens_seen, "train_flops": tokens_seen * costs.flops_per_token_train,
        "steps": state["step"], "epochs": tokens_seen / data.epoch_tokens, **metrics,
        "val_loss": final["val_loss"], "train_loss": final["train_loss"],
        "val_tokens": val_y.numel(), "data": data.describe(),
        "wall_seconds": state["wall_seconds"],
        "tokens_per_second": tokens_seen / max(state["wall_seconds"], 1e-9),
        **state["environment"], "device": device.type, "world_size": distributed.world_size(),
        "precision": chosen_device.precision(device), "compiled": compile,
        "started_at": state["started_at"], "ended_at": record.now()}
    if memory_start is not None and not quiet:
        result["diagnostics"] = memory_diagnostics()
    if not quiet:
        torch.save(model.state_dict(), out_dir / MODEL)
    if run.task == "image" and not quiet:  # sampling and FID: after training, not in its clock
        result.update(data.evaluate_generation(model, out_dir, tcfg.seed))
        result["ended_at"] = record.now()
    if not quiet:
        columns = record.curve_columns(metric)
        if memory_start is not None:
            columns += diagnostics.CURVE_COLUMNS
        record.write_curve(out_dir, state["curve"], columns)
        record.write_result(out_dir, result)
        (out_dir / record.CHECKPOINT).unlink(missing_ok=True)
    return result
