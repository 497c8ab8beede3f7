"""The training loop: one run from a RunConfig to a result record, resumable at any checkpoint.

One loop for every task: it knows a task only through movelab.training.task.Task (its data,
its validation metric, what it measures after training), and finds the run's task in the
registry movelab.training.tasks:
  text   movelab.data.task; validation metric val_bpb (bits per byte)
  image  movelab.images.task; validation metric bits_per_token (bits per image token); after
         training it samples the model and adds fid, class_accuracy and a samples.png
The final weights are kept as model.pt (record.MODEL; for sampling and `movelab inspect`). Runs
of a task with memory diagnostics (text) and a memory path (LaVE, MoVE) also record
movelab.diagnostics: at every evaluation in curve.csv (its CURVE_COLUMNS) and in full in
result.json ("diagnostics").
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from movelab import diagnostics
from movelab.accounting import analytic_costs, training_memory
from movelab.config import ConfigError
from movelab.data.cache import default_cache_dir, write_json_atomically
from movelab.model import GPT
from movelab.training import device as chosen_device
from movelab.training import claim, distributed, record, tasks
from movelab.training.config import RunConfig
from movelab.training.optim import build_optimizers, clip_gradients, lr_multiplier, set_lr
from movelab.training.trackers import open_trackers

CHECKPOINT_SECONDS = 120.0  # besides every validation pass
# compile=None (the default) compiles a single-process CPU run whose training FLOPs reach this:
# eager, ~300 s and more on this machine, where torch.compile's 1.3-1.5x (docs/research-log.md,
# 2026-12-01) repays the ~10-60 s its first step spends compiling (counted in wall_seconds)
AUTO_COMPILE_TRAIN_FLOPS = 1e13


class RunError(Exception):
    """A run that cannot start or go on; the message says why and what to do."""


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM); its last consistent state is checkpointed."""


def evaluate(model: GPT, data, x: torch.Tensor, y: torch.Tensor,
             rows: int | None = None, precision: str = "auto") -> tuple[float, float]:
    """(the task's metric, nats per token) over fixed validation windows. Nats per token
    averages over every target; the metric is the data's task's (Task.counted_nats and
    metric_value: bits per byte for text, bits per image token for images). Under torchrun each
    rank scores every world_size-th batch of windows and the sums are added over the ranks.
    rows: validation windows per forward pass (default: the data's own); precision: the run's
    (TrainConfig.precision)."""
    task = tasks.TASKS[data.task]
    model.eval()
    rows = rows or data.eval_batch
    counted = all_nats = 0.0
    with torch.no_grad():
        for i in range(distributed.rank() * rows, len(x), distributed.world_size() * rows):
            targets = y[i:i + rows]
            with chosen_device.autocast(x.device, precision):
                nats = model(x[i:i + rows], targets, reduction="none").view(targets.shape)
            all_nats += nats.sum().item()
            counted += task.counted_nats(data, nats, targets).sum().item()
    model.train()
    counted, all_nats = distributed.sum_over_ranks(counted, all_nats)
    return task.metric_value(data, counted, y), all_nats / y.numel()


def existing_checkpoint(out_dir: Path, run: RunConfig, *, resume: bool, force: bool
                        ) -> dict | None:
    """What `out_dir` holds, judged without changing it: the checkpoint to resume (read and
    checked), or None to start afresh. Raises RunError for a finished run (without --force),
    an unfinished one (without --resume or --force) and a checkpoint that cannot be resumed."""
    result, checkpoint = out_dir / record.RESULT, out_dir / record.CHECKPOINT
    if force:
        return None  # the old run's files go once the new run has passed every check
    if result.exists():
        raise RunError(f"{out_dir} already holds a finished run ({record.RESULT}); pass --force "
                       "to overwrite it or choose another --out")
    if not checkpoint.exists():
        if resume:
            print(f"movelab train: no {record.CHECKPOINT} in {out_dir} to resume; starting at "
                  "step 0", file=sys.stderr)
        return None
    if not resume:
        raise RunError(f"{out_dir} holds an unfinished run; pass --resume to continue it or "
                       "--force to start over")
    try:
        saved = record.load_checkpoint(out_dir)
    except record.RecordError as err:
        raise RunError(f"cannot resume: {err}; start over with --force (or restore it)") from None
    if saved["config_hash"] != run.hash():
        raise RunError(f"{out_dir} holds a checkpoint of a different config "
                       f"({saved['config_hash']}, this one is {run.hash()}); use the same "
                       "flags (or --from its run.json), another --out, or --force")
    return saved


def check_memory(run: RunConfig, device: torch.device) -> None:
    """Refuse, before anything is allocated, a run whose training step cannot fit in the
    memory this machine has free (accounting.training_memory; --ignore-memory-check skips)."""
    rows = run.train.batch_size // distributed.world_size()
    estimate = training_memory(run.model, rows, optimizer=run.train.optimizer,
                               activation_bytes=2 if device.type == "cuda" else 4)
    # CPU ranks share the machine's memory; each GPU rank has its own device
    ranks = 1 if device.type == "cuda" else int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    free = chosen_device.free_memory(device)
    if free is not None and estimate.total * ranks > free:
        parts = ", ".join(f"{kind} {_gib(getattr(estimate, kind))}"
                          for kind in ("weights", "gradients", "optimizer", "activations"))
        raise RunError(f"{run.model.label} at batch {run.train.batch_size} needs about "
                       f"{_gib(estimate.total * ranks)} ({parts}"
                       f"{f', x {ranks} ranks' if ranks > 1 else ''}) but {device.type} has "
                       f"{_gib(free)} free; shrink --width, --depth, --slots or --batch-size, "
                       "or pass --ignore-memory-check to try anyway")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def train(run: RunConfig, out_dir: Path, *, resume: bool = False, force: bool = False,
          progress: bool | None = None, cache_dir: Path | None = None, device: str = "auto",
          compile: bool | None = None, memory_check: bool = True,
          trackers: tuple[str, ...] = ()) -> dict:
    """Train `run` and write its record into `out_dir`; returns the result dict. Launched by
    torchrun, every rank calls this with the same arguments: the ranks split each global batch
    (see movelab.training.distributed), all of them resume from the same checkpoint, and rank 0
    alone reports and writes the record. `device`: auto (a GPU when torch sees one), cpu or
    cuda; on CUDA the forward runs in bf16 (movelab.training.device). `compile`: train through
    torch.compile (validation and sampling stay eager); None: where it pays (auto_compile). `memory_check`: refuse a run that
    cannot fit in free memory (check_memory). `trackers`: also log the curve rows to these
    (movelab.training.trackers).

    Rank 0 claims `out_dir` (movelab.training.claim) for as long as it runs; nothing in it
    changes before every check has passed (config, memory, data, checkpoint). SIGINT and
    SIGTERM stop the run at a consistent state, which is checkpointed: --resume continues it
    and ends exactly as an uninterrupted run (docs/guarantees.md)."""
    check_memory_update(run, compile is True)
    signals = _Signals()
    with distributed.process_group(), signals.installed():
        chosen_device.choose(device)
        chosen_device.keep_freed_host_memory()
        if compile is None:
            compile = auto_compile(run, distributed.device())
        if memory_check:
            check_memory(run, distributed.device())
        with _claimed(Path(out_dir)) as out:
            return _train(run, out, resume, force, progress, cache_dir, compile, signals,
                          trackers)


def auto_compile(run: RunConfig, device: torch.device) -> bool:
    """The default: compiled on the CPU, in one process, with the dense memory update, for a run
    of at least AUTO_COMPILE_TRAIN_FLOPS; eager otherwise (short runs, tests, CUDA, lazy)."""
    train_flops = (analytic_costs(run.model).flops_per_token_train * run.train.batch_size
                   * run.model.seq_len * run.train.total_steps(run.model))
    return (device.type == "cpu" and distributed.launched_world_size() == 1
            and run.train.memory_update == "dense" and train_flops >= AUTO_COMPILE_TRAIN_FLOPS)


def check_memory_update(run: RunConfig, compile: bool) -> None:
    """The lazy memory update's row-sparse gradients run eager and in one process: inductor
    cannot compile sparse tensors, and data parallelism over them is untested."""
    if run.train.memory_update == "lazy" and (compile or distributed.launched_world_size() > 1):
        raise ConfigError("--memory-update lazy trains eager and in one process (torch.compile "
                          "cannot compile its row-sparse gradients, and data parallelism over "
                          "them is untested); drop --compile and torchrun, or use "
                          "--memory-update dense")


@contextlib.contextmanager
def _claimed(out_dir: Path):
    """`out_dir`, made if needed and claimed by rank 0 for the block. If the block fails before
    the run has written anything, folders it made are removed again."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"--out {out_dir} is a file, not a folder; choose a folder for the run")
    made = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(f"{out_dir} is not writable")
        mine = claim.claim(out_dir, claim.ancestors()) if distributed.is_main() else None
    except claim.Claimed as err:
        raise RunError(str(err)) from None
    except OSError as err:
        _remove_empty(made)
        raise RunError(f"cannot write the run into --out {out_dir}: "
                       f"{err.strerror or err}; choose a folder you can write") from None
    try:
        yield out_dir
    finally:
        if mine is not None:
            claim.release(out_dir, mine)
            _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


class _Signals:
    """SIGINT and SIGTERM (Ctrl-C, kill, SLURM's time limit, a sweep being stopped) as the loop
    sees them: outside a critical section they raise KeyboardInterrupt at once; inside one (an
    optimizer update and its bookkeeping, a checkpoint write) they wait for its end. Once one
    has been raised, later ones are ignored, so the last checkpoint is written in peace."""

    def __init__(self):
        self.depth, self.pending, self.stopping = 0, False, False

    def _stop(self):
        self.stopping = True
        raise KeyboardInterrupt

    def handler(self, signum, frame):
        if self.stopping:
            return
        if self.depth:
            self.pending = True
            return
        self._stop()

    @contextlib.contextmanager
    def critical(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending and not self.stopping:
            self._stop()

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _train(run: RunConfig, out_dir: Path, resume: bool, force: bool, progress: bool | None,
           cache_dir: Path | None, compile: bool, signals: _Signals,
           trackers: tuple[str, ...] = ()) -> dict:
    """The run as a state machine. Its state (weights, optimizer moments, the data generator,
    the step, the curve, the train losses since the last evaluation) changes only inside
    critical sections, at two kinds of transition: a training step (batch drawn, update made,
    step counted) and an evaluation (validation pass, curve row recorded). Between them it is
    consistent, and any interrupt checkpoints that consistent state: an evaluation that was
    due but not recorded is done on resume, and the generator's state is the one from before
    the batch in flight was drawn."""
    cfg, tcfg, task = run.model, run.train, tasks.task_of(run)
    distributed.check_batch_size(tcfg.batch_size)
    main = distributed.is_main()
    quiet = not main  # one rank reports
    saved = existing_checkpoint(out_dir, run, resume=resume, force=force)
    if main:
        record.remove_partials(out_dir)  # a killed writer's; the folder is ours now
    bar_on_tty = sys.stderr.isatty() if progress is None else progress

    try:
        with distributed.main_first():  # rank 0 fills the data cache, the others read it
            data = task.prepare(run, cache_dir, progress=bar_on_tty)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped while preparing the data of {out_dir}; nothing in it changed"
                          ) from None
    if data.vocab_size != cfg.vocab_size:
        raise ConfigError(f"the tokenizer of {tcfg.corpus} has {data.vocab_size} tokens but the "
                          f"model expects {cfg.vocab_size}; pass --vocab-size {data.vocab_size}")
    metric = task.metric
    device = distributed.device()
    val_x, val_y = (t.to(device) for t in data.val_windows(cfg.seq_len))  # fails early if short

    torch.manual_seed(tcfg.seed)
    model = GPT(cfg).to(device)
    optimizers = build_optimizers(model, tcfg)
    rng = np.random.default_rng(tcfg.seed)
    # diagnostics of the memory: its rows as initialised (before a checkpoint loads)
    memory_start = diagnostics.memory_rows(model) if task.memory_diagnostics and main else None
    if memory_start is not None:
        memory_start = memory_start.detach().clone()
        counts_per_epoch = diagnostics.training_counts(data)
        diagnostic_windows = [t.to(device) for t in data.val_windows(
            cfg.seq_len, diagnostics.DIAGNOSTIC_WINDOWS)]

    def memory_diagnostics() -> dict | None:
        if memory_start is None:
            return None
        counts = counts_per_epoch * (state["step"] * tokens_per_step / data.epoch_tokens)
        return diagnostics.memory_diagnostics(model, memory_start, data, counts,
                                              *diagnostic_windows)

    costs = analytic_costs(cfg)
    total_steps = tcfg.total_steps(cfg)
    tokens_per_step = tcfg.batch_size * cfg.seq_len
    eval_steps = {round(total_steps * (i + 1) / tcfg.evals) for i in range(tcfg.evals)} - {0}
    state = {"step": 0, "curve": [], "wall_seconds": 0.0, "started_at": record.now(),
             "train_losses": [], "environment": record.environment()}
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            if len(saved["optimizers"]) != len(optimizers):
                raise ValueError(f"{len(saved['optimizers'])} optimizers, not {len(optimizers)}")
            for optimizer, optimizer_state in zip(optimizers, saved["optimizers"]):
                optimizer.load_state_dict(optimizer_state)
            rng.bit_generator.state = saved["data_rng"]
        except (RuntimeError, ValueError, TypeError, KeyError) as err:
            raise RunError(f"cannot resume {out_dir / record.CHECKPOINT}: it does not fit this "
                           f"model ({str(err).splitlines()[0]}); start over with --force"
                           ) from None
        state = saved["loop_state"]
        resumed_under = record.environment()
        if resumed_under["git_commit"] != state["environment"]["git_commit"]:
            state["environment"].setdefault("resumed_under_commits", []).append(
                resumed_under["git_commit"])
    elif main and force:  # every check has passed: the old run gives way
        record.remove_run(out_dir, also=(record.MODEL, *tasks.artefacts()))
    data_rng = rng.bit_generator.state  # the generator's state before the next batch is drawn
    saved_step = state["step"] if saved is not None else None

    def checkpoint():
        nonlocal saved_step
        if quiet:
            return
        with signals.critical():
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise RunError(f"the weights became non-finite by step {state['step']}; lower "
                               "--lr / --embedding-lr or raise --warmup-frac and start over "
                               "(--force)")
            record.save_checkpoint(out_dir, {
                "config_hash": run.hash(), "model": model.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers],
                "data_rng": json.dumps(data_rng), "loop_state": json.dumps(state)})
            saved_step = state["step"]

    if main:
        write_json_atomically(out_dir / "run.json", {"config": run.to_dict(),
                                                    "config_hash": run.hash()})
    stepper = distributed.wrap(model)  # the model itself in a single process
    if compile:  # inductor's compiled graphs are cached beside the data, across runs
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR",
                              str((cache_dir or default_cache_dir()) / "inductor"))
        stepper = torch.compile(stepper)
    bar = tqdm(total=total_steps, initial=state["step"], unit="step",
               disable=quiet or not bar_on_tty, dynamic_ncols=True, desc=cfg.label)
    tracking = open_trackers(trackers, out_dir, run, active=not quiet)
    session_start, session_start_step = time.perf_counter(), state["step"]
    last_checkpoint, wall_before = session_start, state["wall_seconds"]

    def evaluation_due() -> bool:
        return state["step"] in eval_steps and not (
            state["curve"] and state["curve"][-1]["step"] == state["step"])

    try:
        while True:
            if evaluation_due():
                val_metric, val_loss = evaluate(model, data, val_x, val_y, tcfg.eval_batch,
                                                  tcfg.precision)
                found = memory_diagnostics()
                with signals.critical():
                    tokens = state["step"] * tokens_per_step
                    state["curve"].append({
                        "step": state["step"], "tokens": tokens,
                        "flops": tokens * costs.flops_per_token_train,
                        "lr_scale": lr_multiplier(state["step"] - 1, total_steps, tcfg),
                        "train_loss": float(np.mean(state["train_losses"])),
                        "val_loss": val_loss, metric: val_metric})
                    if found is not None:
                        state["curve"][-1].update(diagnostics.curve_fields(found))
                    tracking.log(state["curve"][-1])
                    state["train_losses"] = []
                    _report(bar, cfg.label, state, task, total_steps, tokens_per_step,
                            (state["step"] - session_start_step) * tokens_per_step / max(
                                1e-9, time.perf_counter() - session_start), quiet, bar_on_tty)
                    checkpoint()
                    last_checkpoint = time.perf_counter()
            if state["step"] >= total_steps:
                break
            x, y = data.train_batch(rng, tcfg.batch_size, cfg.seq_len)
            set_lr(optimizers, lr_multiplier(state["step"], total_steps, tcfg))
            with chosen_device.autocast(device, tcfg.precision):
                loss = stepper(distributed.local_rows(x), distributed.local_rows(y))
            global_loss = distributed.average(loss.detach()).item()  # the same on every rank
            if not math.isfinite(global_loss):
                raise RunError(
                    f"the loss became {global_loss} at step {state['step'] + 1}; the run diverged "
                    "and resuming would repeat it: lower --lr / --embedding-lr or raise "
                    "--warmup-frac and start over (--force)"
                    + (f"; {out_dir / record.CHECKPOINT} (step {saved_step}, finite weights) "
                       "is kept" if saved_step is not None and not quiet else ""))
            loss.backward()
            clip_gradients(model.parameters(), tcfg.grad_clip)
            with signals.critical():
                for optimizer in optimizers:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["train_losses"].append(global_loss)
                state["wall_seconds"] = wall_before + time.perf_counter() - session_start
                data_rng = rng.bit_generator.state
                bar.update()
                if (not evaluation_due()
                        and time.perf_counter() - last_checkpoint > CHECKPOINT_SECONDS):
                    checkpoint()
                    last_checkpoint = time.perf_counter()
    except KeyboardInterrupt:
        signals.stopping = True
        checkpoint()  # every moment a KeyboardInterrupt can come is a consistent state
        tracking.close()
        raise Interrupted(f"stopped at step {state['step']} of {total_steps}; continue with the "
                          f"same command plus --resume (out: {out_dir})") from None
    finally:
        bar.close()

    try:
        result = _finish(run, task, out_dir, model, data, state, costs, val_y, device, compile,
                         quiet, memory_diagnostics())
    except KeyboardInterrupt:
        raise Interrupted(f"stopped while writing the record of {out_dir} (training is done); "
                          "the same command plus --resume finishes it") from None
    tracking.close([out_dir / name for name in task.artefacts])
    return result


def _report(bar, label: str, state: dict, task, total_steps: int, tokens_per_step: int,
            rate: float, quiet: bool, bar_on_tty: bool) -> None:
    row, metric = state["curve"][-1], task.metric
    bar.set_postfix(loss=f"{row['train_loss']:.3f}", **{task.short_metric: f"{row[metric]:.4f}"},
                    tok_s=f"{rate:,.0f}")
    if not (quiet or bar_on_tty):
        eta = (total_steps - state["step"]) * tokens_per_step / max(rate, 1e-9)
        print(f"{label}: step {state['step']}/{total_steps} tokens {row['tokens']:,} "
              f"train_loss {row['train_loss']:.4f} {metric} {row[metric]:.4f} {rate:,.0f} "
              f"tok/s eta {eta:.0f}s", flush=True)


def _finish(run: RunConfig, task, out_dir: Path, model: GPT, data, state: dict, costs,
            val_y: torch.Tensor, device: torch.device, compile: bool, quiet: bool,
            memory: dict | None = None) -> dict:
    """The result record of a trained run (and the task's artefacts), written last."""
    cfg, tcfg = run.model, run.train
    final = state["curve"][-1]
    tokens_seen = state["step"] * tcfg.batch_size * cfg.seq_len
    result = {
        "run_id": run.hash(), "config_hash": run.hash(), "config": run.to_dict(), "task": run.task,
        "label": cfg.label, "value_path": cfg.value_path, "depth": cfg.depth, "width": cfg.width,
        "slots": cfg.slots or 0, "density": cfg.density, "gate_standard": cfg.gate_standard,
        "seed": tcfg.seed, **costs.to_dict(),
        "tokens_seen": tokens_seen, "train_flops": tokens_seen * costs.flops_per_token_train,
        "steps": state["step"], "epochs": tokens_seen / data.epoch_tokens, **task.record_metrics(state["curve"]),
        "val_loss": final["val_loss"], "train_loss": final["train_loss"],
        "val_tokens": val_y.numel(), "data": data.describe(),
        "wall_seconds": state["wall_seconds"],
        "tokens_per_second": tokens_seen / max(state["wall_seconds"], 1e-9),
        **state["environment"], "device": device.type, "world_size": distributed.world_size(),
        "precision": chosen_device.precision(device, tcfg.precision), "compiled": compile,
        "started_at": state["started_at"], "ended_at": record.now()}
    if memory is not None:
        result["diagnostics"] = memory
    if not quiet:
        record.save_tensors(out_dir / record.MODEL, model.state_dict())
        extra = task.after_training(data, model, out_dir, tcfg.seed)  # not in the run's clock
        if extra:
            result.update(extra)
            result["ended_at"] = record.now()
        columns = record.curve_columns(task.metric)
        if memory is not None:
            columns += diagnostics.CURVE_COLUMNS
        record.write_curve(out_dir, state["curve"], columns)
        record.write_result(out_dir, result)
        (out_dir / record.CHECKPOINT).unlink(missing_ok=True)
    return result
