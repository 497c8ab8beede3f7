"""Command line: `movelab flops | train | sweep ...` (also `python -m movelab ...`).

Bad input (an impossible config, a missing dataset) ends with one line naming the problem and
the fix, and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from movelab.accounting import analytic_costs
from movelab.config import LADDERS, PRESETS, VALUE_PATHS, ConfigError, ModelConfig, build_config

LADDER_VARIANTS = [("standard", None), ("lave", 1), ("lave", 2),
                   ("move", 1), ("move", 2), ("move", 4), ("move", 8), ("move", 16), ("move", 32)]


class UsageError(Exception):
    """Raised for input that cannot work; main() prints it as one line and exits 2."""


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model (a preset, or the depth dial, plus overrides)")
    g.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                   help=f"a ladder rung: {', '.join(PRESETS)}. Without it the CPU ladder's rule "
                        "derives everything from --depth (width 32 x depth, heads of 32)")
    g.add_argument("--depth", type=int, help="layers L (default: the preset's, or 4)")
    g.add_argument("--width", type=int, help="model width d (default: the ladder's aspect x depth)")
    g.add_argument("--heads", type=int, help="attention heads H (default: width / ladder head size)")
    g.add_argument("--vocab-size", type=int, help="vocabulary size V (default: the ladder's)")
    g.add_argument("--seq-len", type=int, help="context length T (default: the ladder's)")
    g.add_argument("--value-path", choices=VALUE_PATHS, default="standard",
                   help="standard, lave (layer-wise value embeddings) or move (mixture of value "
                        "embeddings); default standard")
    g.add_argument("--density", type=float, metavar="K",
                   help="lave: 1 (every other layer) or 2 (every layer); move: xK, M = K*L/2 slots")
    g.add_argument("--slots", type=int, metavar="M", help="move: number of slots (overrides --density)")
    gate = g.add_mutually_exclusive_group()
    gate.add_argument("--gate-standard", dest="gate_standard", action="store_true", default=None,
                      help="lave ablation: also gate the standard value path")
    gate.add_argument("--no-gate-standard", dest="gate_standard", action="store_false",
                      help="move ablation: fix the standard path's gate g0 at 1")


def config_from_args(args: argparse.Namespace) -> ModelConfig:
    density = args.density
    if density is not None and float(density).is_integer():
        density = int(density)
    return build_config(args.preset, depth=args.depth, width=args.width, heads=args.heads,
                        vocab_size=args.vocab_size, seq_len=args.seq_len,
                        value_path=args.value_path, density=density, slots=args.slots,
                        gate_standard=args.gate_standard)


def costs_record(cfg: ModelConfig) -> dict:
    """The JSON face of a config's accounting (what `movelab flops --json` prints)."""
    return {"label": cfg.label, "config": cfg.to_dict(), **analytic_costs(cfg).to_dict()}


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def format_costs(record: dict) -> str:
    lines = [f"{record['label']}   (width {record['config']['width']}, heads "
             f"{record['config']['n_heads']}, vocab {record['config']['vocab_size']}, "
             f"seq_len {record['config']['seq_len']})", "parameters by group:"]
    for group, n in record["params"].items():
        lines.append(f"  {group:<22}{n:>16,}")
    lines += [f"  {'total':<22}{record['params_total']:>16,}",
              f"  {'active (matmul)':<22}{record['params_active']:>16,}",
              "per token:",
              f"  {'train FLOPs':<36}{record['flops_per_token_train']:>16,}"
              "   (6 x active + 12 L d_kv T)",
              f"  {'  of which matmul':<36}{record['flops_per_token_train_matmul']:>16,}",
              f"  {'  of which attention':<36}{record['flops_per_token_train_attention']:>16,}",
              f"  {'forward FLOPs':<36}{record['flops_per_token_forward']:>16,}",
              f"  {'value-mix FLOPs (fwd, not in 6N)':<36}"
              f"{record['flops_per_token_value_mix_forward']:>16,}",
              f"  {'bytes gathered, tables+bank (fp32)':<36}{record['bytes_gathered_per_token']:>16,}",
              f"  {'bytes gathered, input embedding':<36}{record['bytes_embedding_per_token']:>16,}"]
    return "\n".join(lines)


def ladder_records(ladders: list[str]) -> list[dict]:
    records = []
    for ladder in ladders:
        for depth in LADDERS[ladder].depths:
            for path, density in LADDER_VARIANTS:
                cfg = build_config(LADDERS[ladder].preset_name(depth), value_path=path,
                                   density=density)
                records.append(costs_record(cfg) | {"preset": LADDERS[ladder].preset_name(depth)})
    return records


def format_ladder(records: list[dict]) -> str:
    header = (f"{'preset':<10}{'value path':<14}{'M':>4}{'params':>9}{'memory':>9}{'active':>9}"
              f"{'train FLOP/tok':>15}{'vs std':>8}{'gathered B/tok':>15}")
    lines, standard = [header, "-" * len(header)], None
    for r in records:
        cfg = r["config"]
        if cfg["value_path"] == "standard":
            standard = r["flops_per_token_train"]
            if len(lines) > 2:
                lines.append("")
        memory = r["params"]["lave_tables"] + r["params"]["move_bank"]
        path = cfg["value_path"] + (f" x{cfg['density']:g}" if cfg["density"] else "")
        lines.append(f"{r['preset']:<10}{path:<14}{cfg['slots'] or '':>4}"
                     f"{_si(r['params_total']):>9}{_si(memory):>9}{_si(r['params_active']):>9}"
                     f"{_si(r['flops_per_token_train']):>15}"
                     f"{r['flops_per_token_train'] / standard:>8.3f}"
                     f"{_si(r['bytes_gathered_per_token']):>15}")
    lines.append("\nmemory = LaVE tables + MoVE bank (lookups, zero FLOPs); "
                 "FLOPs: 6 x active + 12 L d_kv T; bytes at fp32")
    return "\n".join(lines)


def cmd_flops(args: argparse.Namespace) -> None:
    if args.ladder:
        records = ladder_records(list(LADDERS) if args.ladder == "all" else [args.ladder])
        print(json.dumps(records, indent=1) if args.json else format_ladder(records))
        return
    record = costs_record(config_from_args(args))
    print(json.dumps(record, indent=1) if args.json else format_costs(record))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movelab",
        description="A scaling-law lab for MoVE (mixture of value embeddings): what is a slot "
                    "of memory worth against a layer of compute?")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    flops = sub.add_parser(
        "flops", help="parameters by group, FLOPs and bytes gathered per token, from the config "
                      "alone (nothing is allocated, so GPU-size models cost nothing)",
        description="Count parameters (by group), active parameters, training and forward FLOPs "
                    "per token and bytes gathered per token, for one config or a whole ladder.",
        epilog="examples:\n  movelab flops --preset cpu-d4 --value-path move --density 4\n"
               "  movelab flops --preset gpu-d20 --value-path move --slots 40 --json\n"
               "  movelab flops --ladder cpu",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(flops)
    flops.add_argument("--ladder", choices=[*LADDERS, "all"],
                       help="instead of one config, tabulate every preset of a ladder x value "
                            "path x density side by side")
    flops.add_argument("--json", action="store_true", help="print JSON instead of a table")
    flops.set_defaults(func=cmd_flops)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, UsageError) as err:
        print(f"movelab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"movelab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
