"""How much of throughput goal 2 the memory paths can meet at all on this core: the least memory
traffic their extra work needs per training step, timed at the core's own streaming bandwidth,
against the goal's allowance (the analytic FLOP overhead + 5 points of the standard step).

A MoVE layer's slot mix does 2 M d_kv FLOPs per token and reads M d_kv floats for them: half a
FLOP per byte, where a matmul here does tens. So its time is set by bytes, which the FLOP ratio of
the goal does not see. The least bytes of a dense-update training step beyond the standard
model's, fp32, each tensor streamed once per pass it must make, nothing materialised that need
not be (N = batch x seq_len tokens, L layers, R = M d_kv floats per bank row, P = V R):

    MoVE  (2L + 2) N R + 9 P   forward: each layer reads the N gathered rows; backward: each
                               layer reads them again for its gates' gradient, and each token's
                               gradient row is added once into the dense gradient (read + write);
                               the dense gradient: zero fill P, clipping's norm reads P, fused
                               AdamW reads parameter, gradient and both moments and writes three
    LaVE  per table (V, d_kv): 4 N d_kv + 9 V d_kv   (gather, gate gradient, read + write of the
                               gradient rows; the same 9 passes over the table)

Bandwidth is that of one thread copying a buffer as large as the path's dense state (parameter,
gradient, two moments), best of a few copies: a working set that fits the last-level cache
streams faster than one that does not. The floor assumes every byte at that rate and no compute,
so a variant whose floor exceeds its allowance cannot meet goal 2 with a dense update on this
core however its kernels are written. A benchmark, not a test: run it on an idle machine.

    python benchmarks/bench_memory_floor.py [--preset cpu-d4 --preset cpu-d8]
        [--variants "lave x1,lave x2,move x1,move x2,move x4,move x8"] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import time

import torch

from movelab.accounting import analytic_costs
from movelab.bench import GOAL_SLACK_POINTS, bench_variant
from movelab.config import ModelConfig, build_config
from movelab.training.config import TrainConfig
from movelab.variant import Variant

FLOAT_BYTES = 4
COPY_REPS = 10


def memory_parameters(cfg: ModelConfig) -> int:
    """P: the memory path's parameters (MoVE bank or LaVE tables), from the accounting."""
    params = analytic_costs(cfg).params
    return params["move_bank"] + params["lave_tables"]


def floor_bytes(cfg: ModelConfig, tokens: int) -> int:
    """The least bytes per dense-update training step of `cfg`'s memory path (module docstring)."""
    gathered = analytic_costs(cfg).elements_gathered_per_token  # R, or the tables' d_kv each
    passes = {"move": 2 * cfg.depth + 2, "lave": 4}.get(cfg.value_path, 0)
    return FLOAT_BYTES * (passes * tokens * gathered + 9 * memory_parameters(cfg))


def state_bytes(cfg: ModelConfig) -> int:
    """Parameter, gradient and two AdamW moments of the memory path."""
    return 4 * FLOAT_BYTES * memory_parameters(cfg)


def copy_bandwidth(nbytes: int) -> float:
    """Bytes per second (read + write) of one thread copying an fp32 buffer of `nbytes`."""
    source = torch.randn(max(nbytes // FLOAT_BYTES, 1))
    target = torch.empty_like(source)
    target.copy_(source)
    best = float("inf")
    for _ in range(COPY_REPS):
        start = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() * FLOAT_BYTES / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", action="append", help="repeatable (default cpu-d4, cpu-d8)")
    parser.add_argument("--variants", default="lave x1,lave x2,move x1,move x2,move x4,move x8")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--steps", type=int, default=6, help="timed compiled standard steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"1 thread, batch {args.batch_size}; floor: least bytes / copy bandwidth at the path's "
          f"dense-state size; allowance: FLOP overhead + {GOAL_SLACK_POINTS:g} points")
    header = (f"{'preset':<8}{'variant':<10}{'state MiB':>10}{'floor MB':>10}{'GB/s':>7}"
              f"{'floor ms':>10}{'floor pt':>10}{'allowed pt':>12}  within reach")
    print(header + "\n" + "-" * len(header))
    for preset in args.preset or ["cpu-d4", "cpu-d8"]:
        standard = build_config(preset)
        step = bench_variant(standard, batch_size=args.batch_size, steps=args.steps, warmup=2,
                             compile=True).step
        tokens = args.batch_size * standard.seq_len
        print(f"{preset:<8}{'standard':<10} compiled step {1e3 * step:.1f} ms")
        base_flops = analytic_costs(standard).flops_per_token_train
        for spec in args.variants.split(","):
            cfg = build_config(preset, **Variant.parse(spec.strip()).model_args)
            nbytes, state = floor_bytes(cfg, tokens), state_bytes(cfg)
            bandwidth = copy_bandwidth(state)
            floor_points = 100 * nbytes / bandwidth / step
            allowed = 100 * (analytic_costs(cfg).flops_per_token_train / base_flops - 1) \
                + GOAL_SLACK_POINTS
            print(f"{preset:<8}{spec.strip():<10}{state / 2**20:>10.1f}{nbytes / 1e6:>10.0f}"
                  f"{bandwidth / 1e9:>7.1f}{1e3 * nbytes / bandwidth:>10.1f}{floor_points:>+10.1f}"
                  f"{allowed:>+12.1f}  {'yes' if floor_points <= allowed else 'NO'}")


if __name__ == "__main__":
    main()
