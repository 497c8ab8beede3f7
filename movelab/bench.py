"""`movelab bench`: what each value path costs in wall-clock time, next to what it costs in FLOPs.

For every preset and variant a model trains on synthetic random tokens with the real optimizers
(`build_optimizers`) and the training loop's gradient clipping. After warmup steps, each timed
step is split into forward, backward and optimizer (clipping, optimizer steps, zeroing the
gradients); each round reports medians over its timed steps. With `rounds` > 1 the whole
plan runs that many times, interleaved (every variant once per round, a fresh model each time),
and the table reports the median round with the min-max over rounds beside it; ratios to the
standard model are taken within each round (paired), so a load that drifts between rounds moves
the spread, not the ratio's median. Alongside:

  tokens/s     batch x seq_len / median step time
  MFU          analytic training FLOPs per token (docs/design.md: 6 x active + 12 L d_kv T) x tokens/s,
               over a matmul peak measured in the same run (best of several square fp32
               matmuls, same device and thread count), at the start of every round; when the
               peak varies by more than IDLE_TOLERANCE across rounds the table says the machine
               was not idle
  peak memory  bytes of live tensors at their peak during one extra step after the timed ones
               (parameters, gradients, optimizer state, activations): CUDA's
               max_memory_allocated, or on the CPU the tensors alive before the step plus the
               running sum of the torch profiler's allocation records. Not the resident set:
               on the CPU that depends on what earlier rows left in malloc's free lists
  ratios       step time over the standard model's at the same preset and mode, next to the
               analytic FLOP ratio; the target: MoVE x1 to x8 spends at most 5 percentage
               points more wall-clock overhead than FLOP overhead

The variant "reference" is a minimal GPT-2-style model at the preset's shape (learned
positions, LayerNorm, GELU MLP, tied embedding and head, fused qkv, SDPA, biases, foreach AdamW):
the yardstick of the throughput goal. The standard model's rows say how many times faster than
the reference's better mode (eager or compiled) they are, paired within each round; goal: at
least GOAL_REFERENCE_SPEEDUP.

A benchmark, not a test: the numbers belong to the machine and its load when they were taken.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from movelab.accounting import analytic_costs
from movelab.config import ConfigError, ModelConfig, build_config
from movelab.model import GPT
from movelab.training.config import MEMORY_UPDATES, TrainConfig
from movelab.training.device import (autocast, host_allocator, keep_freed_host_memory,
                                     precision)
from movelab.training.device import choose as choose_device
from movelab.training.optim import build_optimizers, clip_gradients
from movelab.variant import Variant

DEFAULT_PRESETS = ("cpu-d4", "cpu-d8")
DEFAULT_VARIANTS = ("standard", "lave x1", "lave x2", "move x1", "move x2", "move x4", "move x8")
REFERENCE = "reference"     # the variant name of ReferenceGPT
GOAL_DENSITIES = {"move": (1, 8), "lave": (1, 2)}  # densities the overhead goal covers, inclusive
GOAL_SLACK_POINTS = 5.0     # wall-clock overhead may exceed the FLOP overhead by this much
GOAL_REFERENCE_SPEEDUP = 1.3  # the standard model against the reference's better mode
MATMUL_REPS = 5
IDLE_TOLERANCE = 0.10       # matmul peaks across rounds differing by more: the machine was busy


@dataclass(frozen=True)
class StepTimes:
    """One model's training steps: medians over the timed steps, in seconds."""

    step: float
    forward: float
    backward: float
    optimizer: float
    first_step: float                # the very first step (under torch.compile, it compiles)
    peak_memory_bytes: int


@dataclass(frozen=True)
class BenchRow:
    preset: str
    variant: str
    label: str
    value_path: str
    density: float | None
    mode: str                        # "eager" or "compiled"
    memory_update: str               # "dense" (AdamW on every memory row) or "lazy" (SparseAdam)
    device: str
    precision: str                   # fp32 or bf16 autocast (--precision; auto: bf16 on CUDA)
    threads: int
    torch_version: str
    host_allocator: str              # training.device.keep_freed_host_memory, as training runs
    batch_size: int
    seq_len: int
    steps: int
    warmup: int
    matmul_size: int
    rounds: int
    matmul_peak_flops: float         # FLOP/s in this row's precision, the best of the rounds'
    #   peaks
    matmul_peak_spread: float        # (best - worst) / best of the rounds' peaks
    memory_method: str
    flops_per_token_train: int
    flop_ratio: float                # flops_per_token_train over the standard model's
    # measurements: None in a row whose torch.compile failed
    step_seconds: float | None = None           # median over rounds of each round's median step
    step_seconds_min: float | None = None       # fastest and slowest round
    step_seconds_max: float | None = None
    round_step_seconds: tuple[float, ...] = ()  # each round's median step, in round order
    forward_seconds: float | None = None
    backward_seconds: float | None = None
    optimizer_seconds: float | None = None
    first_step_seconds: float | None = None  # untimed; under torch.compile it compiles
    tokens_per_second: float | None = None
    mfu: float | None = None
    peak_memory_bytes: int | None = None
    step_ratio: float | None = None  # step time over the standard model's, same preset and mode:
    step_ratio_min: float | None = None  # the median, min and max over rounds of the ratio
    step_ratio_max: float | None = None  # within each round
    overhead_gap_points: float | None = None  # 100 x (step_ratio - flop_ratio)
    goal: str | None = None          # PASS / FAIL for MoVE x1 to x8
    speedup: float | None = None     # compiled rows: eager step time over compiled
    fp32_speedup: float | None = None  # bf16 rows: the same variant and mode's fp32 step time
    #   over this row's, the median over rounds of the ratio within each round
    reference_speedup: float | None = None  # standard rows: the reference's better mode's step
    #   time over this row's, the median over rounds of the ratio within each round
    error: str | None = None         # compiled rows: why torch.compile failed


class ReferenceBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.o = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(B, T, 3, self.heads, C // self.heads).permute(
            2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(B, T, C))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class ReferenceGPT(nn.Module):
    """A minimal GPT-2-style model at `cfg`'s depth, width, heads, vocabulary and context: the
    throughput yardstick (torch's default initialisation; it is timed, never trained)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.position_embedding = nn.Embedding(cfg.seq_len, cfg.width)
        self.blocks = nn.ModuleList(ReferenceBlock(cfg.width, cfg.n_heads)
                                    for _ in range(cfg.depth))
        self.ln_f = nn.LayerNorm(cfg.width)

    def forward(self, tokens, targets):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.token_embedding.weight.t()  # tied
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure_matmul_peak(size: int = 2048, reps: int = MATMUL_REPS, device="cpu",
                        requested_precision: str = "auto") -> float:
    """FLOP/s of the fastest of `reps` (size x size) @ (size x size) matmuls, after one untimed
    warmup, on the current thread count; in the precision a run at `requested_precision` trains
    in there (auto: fp32 on the CPU, bf16 on CUDA)."""
    device = torch.device(device)
    dtype = torch.bfloat16 if precision(device, requested_precision) == "bf16" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = _clock(device)
        a @ b
        best = min(best, _clock(device) - start)
    return 2 * size**3 / best


def memory_method(device) -> str:
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated over one extra training step"
    return ("peak bytes of live tensors over one extra training step (parameters, optimizer "
            "state and batch, plus the torch profiler's records of what the step allocates)")


def _peak_memory(step, device: torch.device, resident: list[torch.Tensor]) -> int:
    """Peak bytes of tensors while `step()` runs; on the CPU, `resident` are those alive before."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step()
        return torch.cuda.max_memory_allocated(device)
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # else the profiler logs each start and stop
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as profile:
        step()
    # each op's own allocations (net of its own frees) at its start, and its net frees at its end
    changes = sorted((e.time_range.start if e.self_cpu_memory_usage > 0 else e.time_range.end,
                      e.self_cpu_memory_usage) for e in profile.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, nbytes in changes:  # frees are negative
        live += nbytes
        peak = max(peak, live)
    return sum(t.untyped_storage().nbytes() for t in resident) + peak


def bench_variant(cfg: ModelConfig, *, batch_size: int, steps: int, warmup: int,
                  device="cpu", compile: bool = False, memory_update: str = "dense",
                  reference: bool = False, precision: str = "auto") -> StepTimes:
    """Train `cfg` (with `reference`: ReferenceGPT at its shape, foreach AdamW) for warmup +
    steps steps on one batch of random tokens at `precision` (TrainConfig.precision) and time
    the last `steps`; then one more step for the peak memory."""
    device = torch.device(device)
    keep_freed_host_memory()  # as `movelab train` does
    if reference:
        model = ReferenceGPT(cfg).to(device)
        optimizers = [torch.optim.AdamW(model.parameters(), lr=TrainConfig.lr, foreach=True)]
    else:
        model = GPT(cfg).to(device)
        optimizers = build_optimizers(model, TrainConfig(tokens=1, memory_update=memory_update))
    grad_clip = TrainConfig.grad_clip
    if compile:
        torch.compiler.reset()  # a fresh cache per model, below dynamo's recompile limit
    stepper = torch.compile(model) if compile else model
    tokens = torch.randint(cfg.vocab_size, (batch_size, cfg.seq_len + 1),
                           generator=torch.Generator().manual_seed(0)).to(device)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step() -> tuple[float, float, float]:
        """One training step; its (forward, backward, optimizer) seconds."""
        t0 = _clock(device)
        with autocast(device, precision):
            loss = stepper(x, y)
        t1 = _clock(device)
        loss.backward()
        t2 = _clock(device)
        clip_gradients(model.parameters(), grad_clip)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return t1 - t0, t2 - t1, _clock(device) - t2

    phases = [step() for _ in range(warmup + steps)]
    timed = phases[warmup:]
    optimizer_state = [value for optimizer in optimizers for state in optimizer.state.values()
                       for value in state.values() if torch.is_tensor(value)]
    return StepTimes(
        step=statistics.median(sum(p) for p in timed),
        forward=statistics.median(p[0] for p in timed),
        backward=statistics.median(p[1] for p in timed),
        optimizer=statistics.median(p[2] for p in timed),
        first_step=sum(phases[0]),
        peak_memory_bytes=_peak_memory(step, device, [*model.parameters(), *model.buffers(),
                                                      *optimizer_state, tokens]))


def run_bench(presets=DEFAULT_PRESETS, variants=DEFAULT_VARIANTS, *, batch_size: int | None = None,
              seq_len: int | None = None, steps: int = 10, warmup: int = 3,
              threads: int | None = None, device: str = "cpu", compile: bool = False,
              matmul_size: int = 2048, rounds: int = 1, memory_update: str = "dense",
              precisions: tuple[str, ...] = ("auto",), log=None) -> list[BenchRow]:
    """Bench every preset x variant (the standard model is always included, as the baseline of
    the ratios) in each of `precisions` (TrainConfig.precision: auto, fp32, bf16), eager and,
    with `compile`, under torch.compile too, `rounds` times interleaved. Configs are checked
    before anything is timed; `log` (e.g. print) hears about each measurement as it is done."""
    batch_size = TrainConfig.batch_size if batch_size is None else batch_size
    for name, value, least in (("--batch-size", batch_size, 1), ("--steps", steps, 1),
                               ("--warmup", warmup, 0),
                               ("--threads", 1 if threads is None else threads, 1),
                               ("--matmul-size", matmul_size, 1), ("--rounds", rounds, 1)):
        if value < least:
            raise ConfigError(f"{name} must be at least {least}, got {value}")
    if memory_update not in MEMORY_UPDATES:
        raise ConfigError(f"unknown memory update {memory_update!r}; choose one of "
                          f"{', '.join(MEMORY_UPDATES)}")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; choose cpu or cuda")
    chosen = choose_device(device)  # on CUDA: TF32 on
    requested = {precision(chosen, p): p for p in precisions}  # fp32 / bf16 -> as asked for
    parsed = {v: {} if v == REFERENCE else Variant.parse(v).model_args  # name -> model fields
              for v in ["standard", *variants]}
    plan = [(preset, label, build_config(preset, seq_len=seq_len, **fields))
            for preset in dict.fromkeys(presets) for label, fields in parsed.items()]
    modes = ("eager", "compiled") if compile else ("eager",)

    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        # precision -> each round's matmul peak; (preset, label, precision, mode) -> one
        # StepTimes (or error) per round
        peaks, measured = {p: [] for p in requested}, {}
        for round_ in range(rounds):
            for computed, asked in requested.items():
                peaks[computed].append(measure_matmul_peak(matmul_size, device=device,
                                                           requested_precision=asked))
                for preset, label, cfg in plan:
                    for mode in modes:
                        times = _measure(cfg, batch_size, steps, warmup, device, mode,
                                         memory_update, reference=label == REFERENCE,
                                         precision=asked)
                        measured.setdefault((preset, label, computed, mode), []).append(times)
                        if log:
                            log(f"bench: round {round_ + 1}/{rounds} " + format_progress(
                                preset, label, f"{computed} {mode}", times, batch_size, cfg))
    finally:
        torch.set_num_threads(threads_before)
    rows = []
    for preset, label, cfg in plan:
        for computed, mode in ((c, m) for c in requested for m in modes):
            row = BenchRow(
                preset=preset, variant=label,
                label=f"d{cfg.depth} GPT-2 reference" if label == REFERENCE else cfg.label,
                value_path=REFERENCE if label == REFERENCE else cfg.value_path,
                density=cfg.density, mode=mode, memory_update=memory_update, device=device,
                precision=computed,
                threads=threads or threads_before, torch_version=torch.__version__,
                host_allocator=host_allocator(),
                batch_size=batch_size, seq_len=cfg.seq_len, steps=steps, warmup=warmup,
                matmul_size=matmul_size, rounds=rounds, matmul_peak_flops=max(peaks[computed]),
                matmul_peak_spread=(max(peaks[computed]) - min(peaks[computed]))
                / max(peaks[computed]),
                memory_method=memory_method(device),
                flops_per_token_train=analytic_costs(cfg).flops_per_token_train, flop_ratio=1.0)
            rows.append(_summarised(row, measured[preset, label, computed, mode]))
    return with_ratios(rows)


def _measure(cfg: ModelConfig, batch_size: int, steps: int, warmup: int, device: str,
             mode: str, memory_update: str = "dense", reference: bool = False,
             precision: str = "auto") -> StepTimes | str:
    """One round of `cfg` in `mode`: its StepTimes, or under torch.compile why it failed."""
    try:
        return bench_variant(cfg, batch_size=batch_size, steps=steps, warmup=warmup,
                             device=device, compile=mode == "compiled",
                             memory_update=memory_update, reference=reference,
                             precision=precision)
    except Exception as err:  # torch.compile fails in many ways (no compiler, unsupported op)
        if mode != "compiled":
            raise
        reason = (str(err).strip().splitlines() or [""])[0]
        return f"compile failed: {type(err).__name__}: {reason}"[:200]


def _summarised(row: BenchRow, rounds: list[StepTimes | str]) -> BenchRow:
    """`row` with the median round's measurements filled in (or the compile error)."""
    errors = [r for r in rounds if isinstance(r, str)]
    if errors:
        return replace(row, error=errors[0])
    step = statistics.median(r.step for r in rounds)
    tokens_per_second = row.batch_size * row.seq_len / step
    return replace(
        row, step_seconds=step, step_seconds_min=min(r.step for r in rounds),
        step_seconds_max=max(r.step for r in rounds),
        round_step_seconds=tuple(r.step for r in rounds),
        forward_seconds=statistics.median(r.forward for r in rounds),
        backward_seconds=statistics.median(r.backward for r in rounds),
        optimizer_seconds=statistics.median(r.optimizer for r in rounds),
        first_step_seconds=statistics.median(r.first_step for r in rounds),
        tokens_per_second=tokens_per_second,
        mfu=row.flops_per_token_train * tokens_per_second / row.matmul_peak_flops,
        peak_memory_bytes=max(r.peak_memory_bytes for r in rounds))


def with_ratios(rows: list[BenchRow]) -> list[BenchRow]:
    """Fill in each row's ratios to the standard row of its preset, precision and mode, the
    overhead goal, (compiled rows) the speedup over the same variant in eager mode, and (bf16
    rows, where fp32 was benched too) the speedup over fp32."""
    standard = {(r.preset, r.precision, r.mode): r for r in rows if r.variant == "standard"}
    eager = {(r.preset, r.variant, r.precision): r for r in rows if r.mode == "eager"}
    fp32 = {(r.preset, r.variant, r.mode): r for r in rows if r.precision == "fp32"}
    # preset -> the step time in each round of the reference's best mode and precision
    references = {}
    for r in rows:
        if r.variant == REFERENCE and r.step_seconds is not None:
            best = references.get(r.preset, r.round_step_seconds)
            references[r.preset] = tuple(map(min, best, r.round_step_seconds))
    done = []
    for row in rows:
        base = standard[row.preset, row.precision, row.mode]
        flop_ratio = row.flops_per_token_train / base.flops_per_token_train
        row = replace(row, flop_ratio=flop_ratio)
        if row.step_seconds is not None and base.step_seconds is not None:
            ratios = [mine / theirs for mine, theirs in zip(row.round_step_seconds,
                                                            base.round_step_seconds)]
            step_ratio = statistics.median(ratios)
            gap = 100 * (step_ratio - flop_ratio)
            row = replace(row, step_ratio=step_ratio, step_ratio_min=min(ratios),
                          step_ratio_max=max(ratios), overhead_gap_points=gap,
                          goal=_goal(row, gap))
        if row.mode == "compiled" and row.step_seconds is not None:
            row = replace(row, speedup=eager[row.preset, row.variant, row.precision].step_seconds
                          / row.step_seconds)
        same_in_fp32 = fp32.get((row.preset, row.variant, row.mode))
        if (row.precision == "bf16" and row.step_seconds is not None and same_in_fp32
                and same_in_fp32.step_seconds is not None):
            row = replace(row, fp32_speedup=statistics.median(
                theirs / mine for theirs, mine in zip(same_in_fp32.round_step_seconds,
                                                      row.round_step_seconds)))
        if (row.variant == "standard" and row.step_seconds is not None
                and row.preset in references):
            speedup = statistics.median(ref / mine for ref, mine in
                                        zip(references[row.preset], row.round_step_seconds))
            row = replace(row, reference_speedup=speedup,
                          goal="PASS" if speedup >= GOAL_REFERENCE_SPEEDUP else "FAIL")
        done.append(row)
    return done


def _goal(row: BenchRow, gap_points: float) -> str | None:
    low, high = GOAL_DENSITIES.get(row.value_path, (1, 0))
    if row.density is None or not low <= row.density <= high:
        return None
    return "PASS" if gap_points <= GOAL_SLACK_POINTS else "FAIL"


def format_progress(preset: str, variant: str, mode: str, times: StepTimes | str,
                    batch_size: int, cfg: ModelConfig) -> str:
    name = f"{preset} {variant} ({mode})"
    if isinstance(times, str):
        return f"{name}: {times}"
    return (f"{name}: {1e3 * times.step:.1f} ms/step, "
            f"{batch_size * cfg.seq_len / times.step:,.0f} tok/s")


def bench_command(rows: list[BenchRow]) -> str:
    """The command line that repeats these rows' measurements."""
    first = rows[0]
    presets = ",".join(dict.fromkeys(r.preset for r in rows))
    variants = ",".join(dict.fromkeys(r.variant for r in rows))
    parts = [f"movelab bench --preset {presets} --variants \"{variants}\"",
             f"--batch-size {first.batch_size}"]
    if len({r.seq_len for r in rows}) == 1:
        parts.append(f"--seq-len {first.seq_len}")
    parts += [f"--steps {first.steps} --warmup {first.warmup} --rounds {first.rounds} "
              f"--threads {first.threads}",
              f"--device {first.device} --matmul-size {first.matmul_size}"]
    if any(r.mode == "compiled" for r in rows):
        parts.append("--compile")
    if first.memory_update != "dense":
        parts.append(f"--memory-update {first.memory_update}")
    benched = list(dict.fromkeys(r.precision for r in rows))
    if benched != [precision(torch.device(first.device))]:
        parts.append(f"--precision {','.join(benched)}")
    return " ".join(parts)


def format_bench(rows: list[BenchRow]) -> str:
    first = rows[0]
    seq_lens = "/".join(str(n) for n in dict.fromkeys(r.seq_len for r in rows))
    lines = [
        f"$ {bench_command(rows)}",
        f"torch {first.torch_version}, device {first.device}, {first.threads} threads, host "
        f"allocator {first.host_allocator}; matmul "
        f"peak {first.matmul_peak_flops / 1e9:.1f} GFLOP/s ({first.precision} {first.matmul_size}^2 x "
        f"{first.matmul_size}^2, best of {MATMUL_REPS} in each of {first.rounds} rounds; the rounds' "
        f"peaks differ by {100 * first.matmul_peak_spread:.0f}%)",
        f"peak memory: {first.memory_method}",
        f"medians of {first.steps} timed steps after {first.warmup} warmup steps, batch "
        f"{first.batch_size} x seq_len {seq_lens}; opt = clipping + optimizer steps + "
        f"zero_grad; {first.rounds} interleaved rounds: the median round, [min-max] over rounds"]
    if first.matmul_peak_spread > IDLE_TOLERANCE:
        lines.append(f"WARNING: the matmul peak moved by {100 * first.matmul_peak_spread:.0f}% "
                     f"between rounds (more than {100 * IDLE_TOLERANCE:.0f}%): the machine was "
                     "not idle; read the ratios with their spread")
    lines.append("")
    header = (f"{'preset':<9}{'variant':<13}{'mode':<15}{'step ms':>9}{'[min-max]':>14}{'fwd':>8}"
              f"{'bwd':>8}{'opt':>8}{'tok/s':>9}{'MFU':>7}{'peak MiB':>9}{'time x':>8}"
              f"{'[min-max]':>14}{'FLOP x':>8}{'gap pt':>8}  {'goal':<5} notes")
    lines += [header, "-" * len(header)]
    for i, r in enumerate(rows):
        if i and r.preset != rows[i - 1].preset:
            lines.append("")
        start = f"{r.preset:<9}{r.variant:<13}{r.precision + ' ' + r.mode:<15}"
        if r.error:
            lines.append(f"{start}  {r.error}")
            continue
        notes = []
        if r.reference_speedup is not None:
            notes.append(f"{r.reference_speedup:.2f}x the speed of the reference's better mode")
        if r.mode == "compiled":
            notes.append(f"{r.speedup:.2f}x eager; first step (compiling) "
                         f"{r.first_step_seconds:.1f} s")
        if r.fp32_speedup is not None:
            notes.append(f"{r.fp32_speedup:.2f}x fp32")
        notes = "; ".join(notes)
        step_range = f"[{1e3 * r.step_seconds_min:.1f}-{1e3 * r.step_seconds_max:.1f}]"
        ratio_range = ("n/a" if r.step_ratio is None
                       else f"[{r.step_ratio_min:.3f}-{r.step_ratio_max:.3f}]")
        lines.append(
            f"{start}{1e3 * r.step_seconds:>9.1f}{step_range:>14}{1e3 * r.forward_seconds:>8.1f}"
            f"{1e3 * r.backward_seconds:>8.1f}{1e3 * r.optimizer_seconds:>8.1f}"
            f"{r.tokens_per_second:>9,.0f}{100 * r.mfu:>6.1f}%{r.peak_memory_bytes / 2**20:>9.1f}"
            f"{_maybe(r.step_ratio, '.3f'):>8}{ratio_range:>14}{r.flop_ratio:>8.3f}"
            f"{_maybe(r.overhead_gap_points, '+.1f'):>8}  {r.goal or '':<5} {notes}".rstrip())
    lines += ["",
              "time x: step time / the standard model's (same preset, precision, mode, round; "
              "median over "
              "rounds); FLOP x: analytic "
              "train FLOPs/token / the standard's",
              "(6N + attention; MoVE's slot contraction is outside it); gap pt: 100 x (time x - "
              "FLOP x); goal: "
              + ", ".join(f"{path} x{low}-x{high}" for path, (low, high) in GOAL_DENSITIES.items())
              + f" PASS when gap <= {GOAL_SLACK_POINTS:+g}; standard (with the reference "
              f"benched) PASS when >= {GOAL_REFERENCE_SPEEDUP:g}x faster than the reference's "
              "better mode",
              "MFU: train FLOPs/token x tok/s / matmul peak; tok/s: batch x seq_len / median "
              "step time"]
    return "\n".join(lines)


def _maybe(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
