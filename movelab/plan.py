"""Plan before you train: what every run of a sweep (or one run) will cost, before a single step.

Per run: parameters (total, active, memory), tokens, steps, training FLOPs (the accounting's, so
they equal what the run records: steps x batch x T x train FLOPs per token), epochs of the corpus
(tokens over its training split, which is prepared and cached to count it; a warning above 1.0),
the estimated wall clock, the peak memory against the machine's (movelab.memory) and the disk
its checkpoint takes.

Wall clock comes from one of two sources:
  timed here   a few training steps of each distinct shape (model x batch) on this machine at
               the sweep's threads per run (`movelab.bench.bench_variant`: random tokens, the
               real optimizers), cached under the data cache's plan/ folder by shape, threads,
               torch version and host. Evaluations add evals x validation tokens x the timed
               forward's seconds per token.
  a profile    measured step times of a named device (`h200`, from docs/research-log.md) or of a
               JSON file of the same shape (`movelab bench --json` rows under "rows"). A run whose
               shape the profile measured scales the measured step by its batch; another depth
               of a measured variant scales the compute part (step - optimizer) by training FLOPs
               per step and the optimizer part by parameters; a variant the profile lacks gets no
               estimate. Evaluations add evals x validation tokens x (step - optimizer) / 3 per
               token (the forward is a third of the training FLOPs).
Evaluations count as nothing where the corpus could not be prepared (its validation split is
unknown); the plan notes it.
Sweep wall clock replays `movelab sweep run`'s order (cheapest first, `jobs` at a time).
"""

from __future__ import annotations

import heapq
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from movelab.accounting import analytic_costs
from movelab.config import ConfigError, ModelConfig, build_config
from movelab.memory import checkpoint_bytes, machine_memory_bytes, memory_estimate
from movelab.training.config import RunConfig, computed_precision
from movelab.variant import Variant

EPOCH_WARNING = 1.0          # epochs above this repeat the corpus
TIMED_STEPS, TIMED_WARMUP = 3, 1
TIMING_CACHE = "plan/step-times.json"


@dataclass(frozen=True)
class StepTime:
    """Seconds of one training step of a shape, and where the number comes from."""

    step_seconds: float
    optimizer_seconds: float
    forward_seconds_per_token: float
    source: str
    peak_memory_measured: int | None = None  # bytes, when it was timed here
    load_average: float | None = None        # the machine's 1-minute load when it was timed


@dataclass(frozen=True)
class DeviceProfile:
    """A device's measured step times: rows with preset, variant (the sweep's language),
    batch_size, seq_len, step_seconds, optimizer_seconds."""

    name: str
    device: str
    precision: str
    memory_bytes: int
    source: str
    rows: tuple[dict, ...]

    def step_time(self, cfg: ModelConfig, batch_size: int) -> StepTime | None:
        tokens = batch_size * cfg.seq_len
        same_variant = []
        for row in self.rows:
            measured = profile_config(row)
            if _variant_key(measured) != _variant_key(cfg):
                continue
            compute = row["step_seconds"] - row["optimizer_seconds"]
            if measured == cfg:
                scale = tokens / (row["batch_size"] * row["seq_len"])
                how = "measured (compute scaled to the batch):"
                optimizer = row["optimizer_seconds"]
            else:
                ours, theirs = analytic_costs(cfg), analytic_costs(measured)
                scale = (tokens * ours.flops_per_token_train
                         / (row["batch_size"] * row["seq_len"] * theirs.flops_per_token_train))
                optimizer = row["optimizer_seconds"] * ours.params_total / theirs.params_total
                how = "extrapolated by FLOPs and parameters from"
            same_variant.append(StepTime(
                step_seconds=optimizer + compute * scale, optimizer_seconds=optimizer,
                forward_seconds_per_token=compute * scale / 3 / tokens,
                source=f"{self.name}: {how} {row['preset']} {row['variant']} "
                       f"(batch {row['batch_size']} x {row['seq_len']})"))
            if measured == cfg:
                return same_variant[-1]
        return same_variant[0] if same_variant else None


def profile_config(row: dict) -> ModelConfig:
    return build_config(row["preset"], seq_len=row["seq_len"],
                        **Variant.parse(row["variant"]).model_args)


def _variant_key(cfg: ModelConfig) -> tuple:
    return cfg.value_path, cfg.density, cfg.gate_standard


# One H200, torch 2.11, bf16 autocast, eager: `movelab bench --preset gpu-d12 --device cuda
# --batch-size 8` (one sample), docs/research-log.md 2026-11-26 (session 3) and the README's
# GPU table: step and optimizer milliseconds of each variant at batch 8 x 2048.
H200 = DeviceProfile(
    name="h200", device="cuda", precision="bf16",
    # NVIDIA sells it as 141 GB of HBM3e; the H200 lent to this project is described as having
    # about 139 GiB of GPU memory, the figure a run can count on
    memory_bytes=139 * 2**30,
    source="docs/research-log.md 2026-11-26 (session 3): movelab bench --preset gpu-d12 "
           "--device cuda --batch-size 8, eager, one H200",
    rows=tuple({"preset": "gpu-d12", "variant": variant, "batch_size": 8, "seq_len": 2048,
                "step_seconds": step / 1e3, "optimizer_seconds": optimizer / 1e3}
               for variant, step, optimizer in (
                   ("standard", 94.1, 3.6), ("lave x1", 103.9, 7.7), ("lave x2", 113.2, 11.5),
                   ("move x1", 109.9, 7.8), ("move x2", 115.8, 11.6), ("move x4", 131.6, 19.6),
                   ("move x8", 162.4, 36.0))))
PROFILES = {H200.name: H200}


def load_profile(spec: str) -> DeviceProfile:
    """A profile by name (h200) or from a JSON file: {"name", "device", "precision",
    "memory_bytes", "source", "rows": [movelab bench --json rows]}."""
    if spec in PROFILES:
        return PROFILES[spec]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"no device profile {spec!r}: give one of {', '.join(PROFILES)} or a "
                          "JSON file with name, device, precision, memory_bytes, source and rows")
    try:
        data = json.loads(path.read_text())
        # a bench of several precisions (--precision fp32,bf16): the profile's precision's rows
        rows = tuple({k: row[k] for k in ("preset", "variant", "batch_size", "seq_len",
                                          "step_seconds", "optimizer_seconds")}
                     for row in data["rows"]
                     if row.get("precision", data["precision"]) == data["precision"])
        return DeviceProfile(data.get("name", path.stem), data["device"], data["precision"],
                             int(data["memory_bytes"]), data.get("source", str(path)), rows)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not a device profile ({type(err).__name__}: {err}); it needs "
                          "device, precision, memory_bytes and rows of `movelab bench --json`"
                          ) from None


@dataclass
class RunPlan:
    run_id: str
    label: str
    depth: int
    variant: str
    groups: list[str]
    seed: int
    status: str                     # done / running / stopped / missing (sweeps), or "new"
    config: dict                    # RunConfig.to_dict(): `movelab train --from` takes it
    params_total: int
    params_active: int
    params_memory: int
    batch_size: int
    seq_len: int
    tokens: int
    steps: int
    train_flops: int
    corpus: str
    corpus_train_tokens: int | None
    epochs: float | None
    step_seconds: float | None
    eval_seconds: float | None
    wall_seconds: float | None
    timing_source: str | None
    memory: dict                    # MemoryEstimate.to_dict(): bytes per process
    peak_memory_measured: int | None
    timing_load_average: float | None
    checkpoint_bytes: int
    kept_bytes: int                 # files left after the run besides records (model.pt)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Plan:
    name: str
    description: str
    machine: dict
    jobs: int
    runs: list[RunPlan]
    notes: list[str] = field(default_factory=list)  # about the whole plan (e.g. a corpus)

    def totals(self, runs: list[RunPlan] | None = None) -> dict:
        runs = self.runs if runs is None else runs
        walls = [r.wall_seconds for r in runs]
        known = all(w is not None for w in walls)
        biggest = sorted((r.checkpoint_bytes for r in runs), reverse=True)[:self.jobs]
        peaks = sorted((r.memory["total"] for r in runs), reverse=True)
        epochs = [r.epochs for r in runs if r.epochs is not None]
        return {
            "runs": len(runs),
            "tokens": sum(r.tokens for r in runs),
            "steps": sum(r.steps for r in runs),
            "train_flops": sum(r.train_flops for r in runs),
            "max_epochs": max(epochs) if epochs else None,
            "runs_above_one_epoch": sum(e > EPOCH_WARNING for e in epochs),
            "run_seconds": sum(walls) if known and runs else None,
            "wall_seconds": _makespan(runs, self.jobs) if known and runs else None,
            "device_hours": (sum(walls) * self.machine["ranks"] / 3600
                             if known and runs else None),
            "peak_memory_bytes": peaks[0] if peaks else 0,
            "peak_memory_at_once_bytes": sum(peaks[:self.jobs]),
            "machine_memory_bytes": self.machine["memory_bytes"],
            # an atomic checkpoint write holds the old file and the new one
            "checkpoint_disk_peak_bytes": 2 * sum(biggest),
            "kept_bytes": sum(r.kept_bytes for r in runs),
            "warnings": sum(len(r.warnings) for r in runs),
        }

    def to_dict(self) -> dict:
        todo = [r for r in self.runs if r.status in ("missing", "stopped", "new")]
        return {"name": self.name, "description": self.description, "machine": self.machine,
                "jobs": self.jobs, "notes": self.notes, "totals": self.totals(),
                "totals_to_train": self.totals(todo), "runs": [asdict(r) for r in self.runs]}


def _makespan(runs: list[RunPlan], jobs: int) -> float:
    """Wall clock of `movelab sweep run`: cheapest (by FLOPs) first, `jobs` at a time."""
    finishing: list[float] = []
    for run in sorted(runs, key=lambda r: r.train_flops):
        start = heapq.heappop(finishing) if len(finishing) >= jobs else 0.0
        heapq.heappush(finishing, start + run.wall_seconds)
    return max(finishing)


class _Corpora:
    """Training-split and validation token counts per (corpus, vocabulary, task), preparing
    (and caching) each corpus once; a corpus that cannot be prepared here counts as unknown."""

    def __init__(self, cache_dir: Path | None, log):
        self.cache_dir, self.log, self.known = cache_dir, log, {}

    @property
    def notes(self) -> list[str]:
        return list(dict.fromkeys(note for *_, note in self.known.values() if note))

    def counts(self, run: RunConfig) -> tuple[int | None, int | None, str | None]:
        key = (run.train.corpus, run.model.vocab_size, run.model.seq_len, run.image)
        if key not in self.known:
            from movelab.data import DataError
            from movelab.training.tasks import prepare_data

            try:
                data = prepare_data(run, self.cache_dir, progress=False)
                self.known[key] = (data.epoch_tokens,
                                   data.val_windows(run.model.seq_len)[1].numel(), None)
            except DataError as err:
                self.known[key] = (None, None, f"corpus {run.train.corpus} cannot be prepared "
                                               f"here, so its epochs are unknown: {err}")
                self.log(f"plan: {self.known[key][2]}")
        return self.known[key]


class _Timer:
    """Step times of shapes timed on this machine, cached by shape, threads, torch and host."""

    def __init__(self, cache_dir: Path | None, threads: int, measure: bool, retime: bool, log):
        from movelab.data.cache import default_cache_dir

        self.path = (Path(cache_dir) if cache_dir else default_cache_dir()) / TIMING_CACHE
        self.threads, self.measure, self.log = threads, measure, log
        self.cache = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.stale = set(self.cache) if retime else set()

    def key(self, cfg: ModelConfig, batch_size: int, compiled: bool, precision: str) -> str:
        import torch

        shape = [cfg.hash(), batch_size, self.threads, torch.__version__,
                 platform.node(), platform.processor() or platform.machine()]
        # fp32 eager keys as before
        return json.dumps(shape + ["compiled"] * compiled + [precision] * (precision != "fp32"))

    def step_time(self, cfg: ModelConfig, batch_size: int, compiled: bool = False,
                  precision: str = "fp32") -> StepTime | None:
        """The step as the run will train it: compiled where the loop's default compiles it,
        in its precision (fp32 or bf16)."""
        key = self.key(cfg, batch_size, compiled, precision)
        if key not in self.cache or key in self.stale:
            if not self.measure:
                return None
            self.cache[key] = self._time(cfg, batch_size, compiled, precision)
            self.stale.discard(key)
            from movelab.data.cache import write_json_atomically

            write_json_atomically(self.path, self.cache, indent=1)
        return StepTime(**self.cache[key])

    def _time(self, cfg: ModelConfig, batch_size: int, compiled: bool, precision: str) -> dict:
        import torch

        from movelab.bench import bench_variant

        mode = ("compiled" if compiled else "eager") + (" bf16" if precision == "bf16" else "")
        self.log(f"plan: timing {TIMED_STEPS} steps of {cfg.label} at batch {batch_size} x "
                 f"{cfg.seq_len}, {self.threads} thread(s), {mode}")
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            times = bench_variant(cfg, batch_size=batch_size, steps=TIMED_STEPS,
                                  warmup=TIMED_WARMUP, compile=compiled, precision=precision)
        finally:
            torch.set_num_threads(before)
        return {"step_seconds": times.step, "optimizer_seconds": times.optimizer,
                "forward_seconds_per_token": times.forward / (batch_size * cfg.seq_len),
                "source": f"timed here: median of {TIMED_STEPS} steps, {self.threads} thread(s)"
                          + (", compiled (the compilation itself not counted)" if compiled else "")
                          + (", bf16 autocast" if precision == "bf16" else ""),
                "peak_memory_measured": times.peak_memory_bytes,
                "load_average": os.getloadavg()[0]}


def _compiles(run: RunConfig) -> bool:
    """Whether `movelab train` without --compile / --no-compile trains this run compiled here."""
    import torch

    from movelab.training.loop import auto_compile

    return auto_compile(run, torch.device("cpu"))


def plan_runs(name: str, entries: list[tuple[RunConfig, str, list[str], str]], *,
              description: str = "", profile: DeviceProfile | None = None, threads: int = 1,
              jobs: int = 1, ranks: int = 1, measure: bool = True, retime: bool = False,
              cache_dir: Path | None = None, log=print) -> Plan:
    """The plan of `entries` (run config, variant, groups, status). With `profile`, wall clock and
    memory are that device's; else this machine's (CPU, fp32), timing each new shape unless
    `measure` is False (then only cached timings count), and every shape again with `retime`.
    `ranks`: data-parallel processes per run (the batch is split over them; device hours count
    each)."""
    if ranks < 1 or jobs < 1 or threads < 1:
        raise ConfigError("--jobs, --threads and --gpus-per-job must be at least 1 for a plan")
    corpora = _Corpora(cache_dir, log)
    timer = None if profile else _Timer(cache_dir, threads, measure, retime, log)
    machine_memory = profile.memory_bytes if profile else machine_memory_bytes()
    plans = []
    for run, variant, groups, status in entries:
        cfg, tcfg = run.model, run.train
        costs = analytic_costs(cfg)
        steps = tcfg.total_steps(cfg)
        tokens = steps * tcfg.batch_size * cfg.seq_len
        train_tokens, val_tokens, _ = corpora.counts(run)
        epochs = tokens / train_tokens if train_tokens else None
        precision = computed_precision(profile.device if profile else "cpu", tcfg.precision)
        step = (profile.step_time(cfg, -(-tcfg.batch_size // ranks)) if profile
                else timer.step_time(cfg, tcfg.batch_size, compiled=_compiles(run),
                                     precision=precision))
        memory = memory_estimate(run, precision=precision, ranks=ranks)
        warnings = []
        if epochs is not None and epochs > EPOCH_WARNING:
            warnings.append(f"{epochs:.2f} epochs of {tcfg.corpus}: the corpus repeats "
                            f"({tokens:,} tokens over a {train_tokens:,}-token training split)")
        if memory.total > machine_memory:
            warnings.append(f"needs about {memory.total / 2**30:.1f} GiB per process, the "
                            f"{'device' if profile else 'machine'} has "
                            f"{machine_memory / 2**30:.1f} GiB")
        if profile and precision != profile.precision:
            warnings.append(f"profile {profile.name} times {profile.precision} steps, this run "
                            f"computes in {precision} (--precision)")
        eval_seconds = wall = None
        if step is None and profile:
            warnings.append(f"no step time: profile {profile.name} has no row of this variant")
        elif step is not None:
            eval_seconds = (tcfg.evals * val_tokens * step.forward_seconds_per_token
                            if val_tokens is not None else 0.0)
            wall = steps * step.step_seconds + eval_seconds
        plans.append(RunPlan(
            run_id=run.hash(), label=cfg.label, depth=cfg.depth, variant=variant,
            groups=list(groups), seed=tcfg.seed, status=status, config=run.to_dict(), params_total=costs.params_total,
            params_active=costs.params_active,
            params_memory=costs.params["lave_tables"] + costs.params["move_bank"],
            batch_size=tcfg.batch_size, seq_len=cfg.seq_len, tokens=tokens, steps=steps,
            train_flops=tokens * costs.flops_per_token_train, corpus=tcfg.corpus,
            corpus_train_tokens=train_tokens, epochs=epochs,
            step_seconds=step.step_seconds if step else None, eval_seconds=eval_seconds,
            wall_seconds=wall, timing_source=step.source if step else None,
            memory=memory.to_dict(),
            peak_memory_measured=step.peak_memory_measured if step else None,
            timing_load_average=step.load_average if step else None,
            checkpoint_bytes=checkpoint_bytes(cfg, optimizer=tcfg.optimizer),
            kept_bytes=memory.weights if run.task == "image" else 0, warnings=warnings))
    machine = ({"device": profile.device, "profile": profile.name, "profile_source": profile.source,
                "precision": profile.precision, "memory_bytes": machine_memory, "ranks": ranks}
               if profile else
               {"device": "cpu", "profile": None, "precision": "fp32",
                "memory_bytes": machine_memory, "ranks": ranks, "threads_per_run": threads,
                "cpus": os.cpu_count(), "host": platform.node()})
    return Plan(name, description, machine, jobs, plans, corpora.notes)


def plan_sweep(sweep, **options) -> Plan:
    """The plan of every run of a Sweep (movelab.sweep), each with its status."""
    entries = [(p.run, p.variant, p.groups, sweep.status(p)) for p in sweep.runs]
    return plan_runs(sweep.name, entries, description=sweep.description, **options)


# ------------------------------------------------------------------------------ formatting

def _bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _count(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def format_totals(plan: Plan, runs: list[RunPlan] | None = None, title: str = "total") -> str:
    t = plan.totals(runs)
    where = (f"profile {plan.machine['profile']} x {plan.machine['ranks']} rank(s)"
             if plan.machine["profile"] else f"this machine, {plan.machine['threads_per_run']} "
                                             f"thread(s) per run")
    epochs = ("?" if t["max_epochs"] is None else
              f"{t['max_epochs']:.2f}" + (f" ({t['runs_above_one_epoch']} run(s) above 1.0!)"
                                          if t["runs_above_one_epoch"] else ""))
    line = (f"{title}: {t['runs']} runs, {_count(t['tokens'])} tokens, {t['train_flops']:.3g} "
            f"FLOPs, max epochs {epochs}; wall clock {_duration(t['wall_seconds'])} at "
            f"{plan.jobs} at a time ({where}; {_duration(t['run_seconds'])} of runs")
    if plan.machine["profile"]:
        line += f", {t['device_hours']:.0f} device-hours" if t["device_hours"] else ""
    return (line + f"); peak memory {_bytes(t['peak_memory_bytes'])} per run "
            f"({_bytes(t['peak_memory_at_once_bytes'])} for {plan.jobs} at once) of "
            f"{_bytes(t['machine_memory_bytes'])}; checkpoints up to "
            f"{_bytes(t['checkpoint_disk_peak_bytes'])} on disk"
            + (f", {_bytes(t['kept_bytes'])} of model.pt kept" if t["kept_bytes"] else "")
            + (f"; {t['warnings']} warning(s)" if t["warnings"] else ""))


def format_plan(plan: Plan) -> str:
    header = (f"{'':2}{'status':<8}{'run_id':<13}{'variant':<22}{'seed':>4}{'params':>8}"
              f"{'memory':>8}{'active':>8}{'tokens':>8}{'steps':>7}{'FLOPs':>10}{'epochs':>7}"
              f"{'wall':>9}{'peak mem':>10}{'ckpt':>10}")
    lines = [f"plan of {plan.name}" + (f": {plan.description}" if plan.description else ""), "",
             header, "-" * len(header)]
    for r in sorted(plan.runs, key=lambda r: (r.train_flops, r.variant, r.seed)):
        lines.append(
            f"{'!' if r.warnings else '':2}{r.status:<8}{r.run_id:<13}"
            f"{f'd{r.depth} {r.variant}'[:21]:<22}{r.seed:>4}"
            f"{_count(r.params_total):>8}{_count(r.params_memory):>8}{_count(r.params_active):>8}"
            f"{_count(r.tokens):>8}{r.steps:>7}{r.train_flops:>10.3g}"
            f"{'?' if r.epochs is None else format(r.epochs, '.2f'):>7}"
            f"{_duration(r.wall_seconds):>9}{_bytes(r.memory['total']):>10}"
            f"{_bytes(r.checkpoint_bytes):>10}")
    warned = [r for r in plan.runs if r.warnings]
    if plan.notes:
        lines += ["", *(f"note: {note}" for note in plan.notes)]
    if warned:
        lines += ["", "warnings:"]
        for r in warned:
            lines += [f"  {r.run_id} d{r.depth} {r.variant} seed {r.seed}: {w}"
                      for w in r.warnings]
    sources = sorted({r.timing_source for r in plan.runs if r.timing_source})
    lines += ["", "wall clock from:" + ("" if sources else " nothing timed"),
              *(f"  {source}" for source in sources)]
    loads = [r.timing_load_average for r in plan.runs if r.timing_load_average is not None]
    if loads and max(loads) > plan.machine["cpus"]:
        lines.append(f"  timed while the machine was busy (1-minute load average up to "
                     f"{max(loads):.1f} on {plan.machine['cpus']} cores): these wall clocks are "
                     "pessimistic; --retime when it is quieter")
    lines += [
              "peak memory: weights + gradients + optimizer state + activations per process "
              "(movelab.memory); FLOPs: steps x batch x T x (6 x active + 12 L d_kv T)", ""]
    todo = [r for r in plan.runs if r.status in ("missing", "stopped", "new")]
    if len(todo) != len(plan.runs):
        lines.append(format_totals(plan, todo, "to train"))
    lines.append(format_totals(plan))
    return "\n".join(lines)
