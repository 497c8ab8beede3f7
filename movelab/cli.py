"""Command line: `movelab flops | train | sweep | demo | bench ...` (also `python -m movelab`).

Bad input (an impossible config, a missing dataset) ends with one line naming the problem and
the fix, and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from movelab.accounting import costs_record, ladder_records
from movelab.config import (BANK_INITS, LADDERS, PRESETS, RECIPE_FIELDS, VALUE_PATHS, ConfigError,
                            ModelConfig, build_config)
from movelab.variant import Variant

class UsageError(Exception):
    """Raised for input that cannot work; main() prints it as one line and exits 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported in one line (the usage of `train` is a page)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def whole_number(minimum: int):
    """An argparse type: a whole number of at least `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}, "
                                             f"not {text!r}")
        return value
    parse.__name__ = f"whole number >= {minimum}"
    return parse


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model (a preset, or the depth dial, plus overrides)")
    g.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                   help=f"a ladder rung: {', '.join(PRESETS)}. Without it the CPU ladder's rule "
                        "derives everything from --depth (width 16 x depth, heads of 32)")
    g.add_argument("--depth", type=int, help="layers L (default: the preset's, or 4)")
    g.add_argument("--width", type=int, help="model width d (default: the ladder's aspect x depth)")
    g.add_argument("--heads", type=int, help="attention heads H (default: width / ladder head size)")
    g.add_argument("--vocab-size", type=int, help="vocabulary size V (default: the ladder's)")
    g.add_argument("--seq-len", type=int, help="context length T (default: the ladder's)")
    g.add_argument("--value-path", choices=VALUE_PATHS,
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
    d = ModelConfig()
    g = parser.add_argument_group("initialisation (recipe; defaults are the paper's)")
    g.add_argument("--router-init-std", type=float,
                   help=f"move: std of the routers' normal init; 0 = zero, every gate 1 "
                        f"(default {d.router_init_std:g})")
    g.add_argument("--bank-init", choices=BANK_INITS,
                   help="move: bank std 1/sqrt(d) (width, default) or 1/sqrt(d M) (width_slots)")
    g.add_argument("--embed-init-std", type=float,
                   help=f"token embedding std (default {d.embed_init_std:g})")
    g.add_argument("--head-init-std", type=float,
                   help=f"output head std (default {d.head_init_std:g})")


def config_from_args(args: argparse.Namespace, *, vocab_size: int | None = None,
                     seq_len: int | None = None) -> ModelConfig:
    """The model of the flags; vocab_size and seq_len are defaults that the flags override."""
    density = args.density
    if density is not None and float(density).is_integer():
        density = int(density)
    recipe = {f: getattr(args, f) for f in RECIPE_FIELDS if getattr(args, f) is not None}
    return build_config(args.preset, depth=args.depth, width=args.width, heads=args.heads,
                        vocab_size=args.vocab_size if args.vocab_size is not None else vocab_size,
                        seq_len=args.seq_len if args.seq_len is not None else seq_len,
                        value_path=args.value_path or "standard", density=density, slots=args.slots,
                        gate_standard=args.gate_standard, **recipe)


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
        path = Variant.of_model(cfg).text
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


MODEL_FLAGS = ("preset", "depth", "width", "heads", "vocab_size", "seq_len", "value_path",
               "density", "slots", "gate_standard", *sorted(RECIPE_FIELDS))
TRAIN_FLAGS = ("corpus", "tokens", "tokens_per_param", "flops", "batch_size", "optimizer", "lr",
               "embedding_lr", "memory_lr", "muon_lr", "weight_decay", "warmup_frac", "final_lr_frac",
               "grad_clip", "evals", "seed", "eval_split", "memory_lr_scaling", "router_lr",
               "adam_beta1", "adam_beta2", "adam_eps", "lr_reference_width", "val_fraction",
               "eval_batch", "memory_update")
IMAGE_FLAGS = ("patch", "codebook_size", "label_dropout", "cfg_scale", "temperature", "top_k",
               "fid_samples")
DEFAULT_TOKENS = 1_000_000


def add_train_args(parser: argparse.ArgumentParser) -> None:
    from movelab.training.config import (EVAL_SPLITS, MEMORY_LR_SCALINGS, MEMORY_UPDATES, OPTIMIZERS,
                                         ImageConfig, TrainConfig)

    d = TrainConfig(tokens=1)
    g = parser.add_argument_group("data and horizon")
    g.add_argument("--task", choices=("text", "image"),
                   help="text (default) or image: class-conditional generation of Fashion-MNIST "
                        "codes (sets --corpus fashion-mnist and the vocabulary and context of "
                        "the image tokens: 523 and 49 at the defaults)")
    g.add_argument("--corpus", help="text: wiki (default; offline, ships in gensim's wheel), "
                                    "pydocs (Debian's python3.11-doc, 3x wiki), pydocs:HTML_DIR, "
                                    "prose (Debian's dictionaries and documentation, with a test "
                                    "split; docs/corpora.md), "
                                    "text:PATH (a file or folder of .txt/.md), "
                                    "fineweb-edu[:PARQUET_DIR], recall:K=N (synthetic positive "
                                    "control of the slot axis, val_bpb is bits per token; "
                                    "movelab/data/recall.py); image: fashion-mnist (default) "
                                    "or fashion-mnist:IDX_DIR")
    h = g.add_mutually_exclusive_group()
    h.add_argument("--tokens", type=int, metavar="N",
                   help=f"train on N tokens (default {DEFAULT_TOKENS:,})")
    h.add_argument("--tokens-per-param", type=float, metavar="R", help="R tokens per active parameter")
    h.add_argument("--flops", type=float, metavar="C", help="a training-FLOP budget (6N + attention)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help=f"sequences per step, global (default {d.batch_size})")
    g.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adamw (default) or muon for the transformer matrices")
    g.add_argument("--lr", type=float, help=f"peak AdamW learning rate of matrices, gates, head "
                                            f"and norms at width 64, scaled by 64/width "
                                            f"(default {d.lr:g})")
    g.add_argument("--embedding-lr", type=float,
                   help=f"token embedding (default {d.embedding_lr:g})")
    g.add_argument("--memory-lr", type=float,
                   help=f"LaVE tables and MoVE bank (default {d.memory_lr:g})")
    g.add_argument("--memory-lr-scaling", choices=MEMORY_LR_SCALINGS,
                   help="memory learning rate over M slots: x1 (constant, default), x1/sqrt(M) "
                        "(inv_sqrt) or x1/M (inv)")
    g.add_argument("--memory-update", choices=MEMORY_UPDATES,
                   help="dense (default): AdamW steps every memory row each step; lazy: "
                        "row-sparse gradients and SparseAdam on the rows a batch touches "
                        "(eager, one process)")
    g.add_argument("--router-lr", type=float,
                   help="move routers' learning rate (default: the --lr rule's, as gates and norms)")
    g.add_argument("--muon-lr", type=float, help=f"with --optimizer muon (default {d.muon_lr:g})")
    g.add_argument("--weight-decay", type=float, help=f"on matrices (default {d.weight_decay:g})")
    g.add_argument("--warmup-frac", type=float, help=f"default {d.warmup_frac:g}")
    g.add_argument("--final-lr-frac", type=float, help=f"cosine floor (default {d.final_lr_frac:g})")
    g.add_argument("--grad-clip", type=float, help=f"default {d.grad_clip:g}")
    g.add_argument("--adam-beta1", type=float, help=f"AdamW beta1 (default {d.adam_beta1:g})")
    g.add_argument("--adam-beta2", type=float, help=f"AdamW beta2 (default {d.adam_beta2:g})")
    g.add_argument("--adam-eps", type=float, help=f"AdamW eps (default {d.adam_eps:g})")
    g.add_argument("--lr-reference-width", type=int,
                   help=f"--lr applies at this width, scaled by it / width "
                        f"(default {d.lr_reference_width})")
    g.add_argument("--val-fraction", type=float,
                   help=f"share of a text corpus's documents held out (default {d.val_fraction:g})")
    g.add_argument("--eval-batch", type=int,
                   help="validation windows per forward pass (default: 16 text, 500 image)")
    g.add_argument("--evals", type=int, help=f"validation passes over the run (default {d.evals})")
    g.add_argument("--seed", type=int, help="init and batch order (default 0)")
    g.add_argument("--eval-split", choices=EVAL_SPLITS,
                   help="what validation scores: dev (default; for every choice) or test (for "
                        "claims; corpora with a test split: prose)")
    i = ImageConfig()
    g = parser.add_argument_group("image task (--task image)")
    g.add_argument("--patch", type=int, help=f"tokenizer tile size (default {i.patch}: 7x7 codes)")
    g.add_argument("--codebook-size", type=int,
                   help=f"tokenizer codes K; vocabulary K + 11 (default {i.codebook_size})")
    g.add_argument("--label-dropout", type=float,
                   help=f"share of training images with the null class (default {i.label_dropout:g})")
    g.add_argument("--cfg-scale", type=float,
                   help=f"classifier-free guidance s: uncond + s (cond - uncond); 1: none "
                        f"(default {i.cfg_scale:g})")
    g.add_argument("--temperature", type=float, help=f"sampling temperature (default {i.temperature:g})")
    g.add_argument("--top-k", type=int, help="sample from the k most likely codes (default: all)")
    g.add_argument("--fid-samples", type=int,
                   help=f"images generated for FID and class accuracy (default {i.fid_samples})")
    g = parser.add_argument_group("run")
    g.add_argument("--out", type=Path, help="run directory (default runs/<config hash>)")
    g.add_argument("--from", dest="from_record", type=Path, metavar="JSON",
                   help="rerun a recorded run (its result.json or run.json): same config and seed")
    g.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    g.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    g.add_argument("--threads", type=whole_number(1),
                   help="torch CPU threads (default: all cores; with --from, the recorded run's)")
    g.add_argument("--ignore-memory-check", action="store_true",
                   help="train even when the estimated memory of a step (weights, gradients, "
                        "optimizer state, activations) exceeds what the device has free")
    g.add_argument("--cache-dir", type=Path,
                   help="data cache (default $MOVELAB_CACHE, else ~/.cache/movelab)")
    g.add_argument("--no-progress", action="store_true", help="plain log lines, no progress bar")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): a GPU when torch sees one (bf16 autocast, TF32), else "
                        "the CPU (fp32)")
    g.add_argument("--compile", action="store_true", help="train through torch.compile")
    add_tracker_arg(g)


def add_tracker_arg(group) -> None:
    from movelab.training.trackers import TRACKERS

    group.add_argument("--tracker", action="append", choices=TRACKERS,
                       help="also log the curve rows and the config to tensorboard (event files "
                            "in the run dir) or wandb (offline unless logged in); repeatable; "
                            "none by default (default: $MOVELAB_TRACKERS, which `movelab sweep "
                            "run --tracker` sets); needs pip install -e '.[trackers]'")


def read_record(path: Path) -> dict:
    """The result.json or run.json that --from names, as a dict with a 'config'."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read --from {path}: {err}; give a result.json or run.json"
                         ) from None
    if not isinstance(recorded, dict) or "config" not in recorded:
        raise UsageError(f"--from {path} has no 'config'; give a result.json or run.json")
    return recorded


def run_config_from_args(args: argparse.Namespace):
    from movelab.training.config import (IMAGE_CORPUS, ImageConfig, RunConfig, TrainConfig,
                                         is_image_corpus)

    if args.from_record is not None:
        given = [f for f in MODEL_FLAGS + TRAIN_FLAGS + IMAGE_FLAGS + ("task",)
                 if getattr(args, f) is not None]
        if given:
            raise UsageError(f"--from reruns a recorded config as it is; drop "
                             f"{', '.join('--' + f.replace('_', '-') for f in given)}")
        try:
            return RunConfig.from_dict(read_record(args.from_record)["config"])
        except ConfigError as err:
            raise UsageError(f"--from {args.from_record}: {err}") from None
    chosen = {f: getattr(args, f) for f in TRAIN_FLAGS if getattr(args, f) is not None}
    if not {"tokens", "tokens_per_param", "flops"} & set(chosen):
        chosen["tokens"] = DEFAULT_TOKENS
    image_flags = {f: getattr(args, f) for f in IMAGE_FLAGS if getattr(args, f) is not None}
    task = args.task or ("image" if is_image_corpus(chosen.get("corpus", "")) else "text")
    if task == "text":
        if is_image_corpus(chosen.get("corpus", "")):
            raise UsageError(f"--corpus {chosen['corpus']} is image data; use --task image")
        if image_flags:
            raise UsageError(f"{', '.join('--' + f.replace('_', '-') for f in image_flags)} "
                             f"{'applies' if len(image_flags) == 1 else 'apply'} only to image "
                             "runs; add --task image or drop it")
        return RunConfig(config_from_args(args), TrainConfig(**chosen))
    chosen.setdefault("corpus", IMAGE_CORPUS)
    if not is_image_corpus(chosen["corpus"]):
        raise UsageError(f"--task image trains on {IMAGE_CORPUS} or {IMAGE_CORPUS}:IDX_DIR, not "
                         f"--corpus {chosen['corpus']}")
    image = ImageConfig(**image_flags)
    model = config_from_args(args, vocab_size=image.layout.vocab_size,
                             seq_len=image.layout.seq_len)
    return RunConfig(model, TrainConfig(**chosen), image)


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from movelab.training.loop import train
    from movelab.training.trackers import chosen_trackers

    run = run_config_from_args(args)
    trackers = chosen_trackers(args.tracker)
    threads = args.threads
    if threads is None and args.from_record is not None:  # a rerun sums floats as the run did
        threads = read_record(args.from_record).get("threads")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                    or threads < 1):
            raise UsageError(f"--from {args.from_record} records threads {threads!r}, not a "
                             "whole number of at least 1; give --threads N")
    if threads:
        torch.set_num_threads(threads)
    out = args.out or Path("runs") / run.hash()
    result = train(run, out, resume=args.resume, force=args.force,
                   progress=False if args.no_progress else None, cache_dir=args.cache_dir,
                   device=args.device, compile=args.compile,
                   memory_check=not args.ignore_memory_check, trackers=trackers)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        print(f"{result['label']}: {result_summary(result)} after {result['tokens_seen']:,} "
              f"tokens, {result['train_flops']:.3g} FLOPs, {result['wall_seconds']:.0f} s; "
              f"record in {out}")


def result_summary(result: dict) -> str:
    """The headline numbers of a run's record, e.g. 'val_bpb 2.3061 (best 2.3050)'."""
    if result.get("task") == "image":
        return (f"bits_per_token {result['bits_per_token']:.4f}, FID {result['fid']:.2f} and "
                f"class accuracy {result['class_accuracy']:.3f} on {result['fid_samples']:,} "
                f"samples at cfg scale {result['cfg_scale']:g}")
    return f"val_bpb {result['val_bpb']:.4f} (best {result['val_bpb_best']:.4f})"


def cmd_inspect(args: argparse.Namespace) -> None:
    from movelab import diagnostics, inspection

    path = args.run_dir / "result.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read {path} ({err}); give a finished run's folder") from None
    found = result.get("diagnostics")
    source = "recorded in result.json"
    if args.recompute or found is None:
        if not (args.run_dir / "model.pt").exists():
            raise UsageError(f"{args.run_dir} has no recorded diagnostics and no model.pt to "
                             "compute them from (runs keep model.pt since 2026-12-01)")
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        try:
            found = inspection.inspect_run(args.run_dir, args.cache_dir)
        except ValueError as err:
            raise UsageError(str(err)) from None
        source = "recomputed from model.pt"
    if args.json:
        print(json.dumps(found, indent=1))
        return
    label = f"{result['label']}: {result_summary(result)} ({source})"
    print(diagnostics.format_diagnostics(label, found))


def cmd_cfg_scale(args: argparse.Namespace) -> None:
    import torch

    from movelab.images.guidance import choose_cfg_scale, format_scales

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        scales = [float(x) for x in args.scales.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--scales takes numbers separated by commas, not {args.scales!r}") from None
    rows = choose_cfg_scale(args.run_dir, scales, samples=args.samples, seed=args.seed,
                            cache_dir=args.cache_dir)
    print(json.dumps(rows, indent=1) if args.json else format_scales(rows))


def cmd_sweep(args: argparse.Namespace) -> None:
    from movelab import sweep as sweeps

    sweep = sweeps.load_sweep(args.name, args.results_dir)
    if args.action == "plan":
        print_plan(plan_sweep_from_args(sweep, args), args.json)
    elif args.action == "status":
        print(sweeps.format_status(sweep))
    elif args.action == "collect":
        print(f"wrote {sweeps.consolidate(sweep)}")
    else:
        options = sweeps.JobOptions(args.partition, args.gpus_per_job, args.cpus_per_job,
                                    args.time_limit)
        at_once = args.jobs or (None if args.executor == "slurm" else 2)
        from movelab.plan import format_totals

        plan = plan_sweep_from_args(sweep, args, measure=False)
        todo = [r for r in plan.runs if r.status in ("missing", "stopped")]
        print(format_totals(plan, todo, "plan of the runs to train"), flush=True)
        if args.tracker:  # every run of the sweep logs to them, grouped by the sweep's name
            from movelab.training.trackers import ENV_GROUP, ENV_TRACKERS, chosen_trackers

            os.environ[ENV_TRACKERS] = ",".join(chosen_trackers(args.tracker))
            os.environ[ENV_GROUP] = sweep.name
        failures = sweeps.run_sweep(sweep, jobs=at_once, threads_per_job=args.threads_per_job,
                                    only_group=args.group, executor=args.executor,
                                    options=options)
        if failures:
            raise UsageError(f"{failures} run(s) failed; their train.log says why; rerun the "
                             "same command to retry them")


def add_plan_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("plan (`movelab plan`, `movelab sweep plan`)")
    g.add_argument("--profile", metavar="NAME|JSON",
                   help="estimate wall clock and memory on a measured device instead of timing "
                        "steps here: h200 (docs/research-log.md) or a JSON profile file")
    g.add_argument("--no-timing", action="store_true",
                   help="time no new shapes; wall clock only where timings are cached")
    g.add_argument("--retime", action="store_true",
                   help="time every shape again, replacing cached timings (they are noisy on a "
                        "busy machine)")
    g.add_argument("--json", action="store_true", help="print the whole plan as JSON")


def print_plan(plan, as_json: bool) -> None:
    from movelab.plan import format_plan

    print(json.dumps(plan.to_dict(), indent=1) if as_json else format_plan(plan))


def plan_sweep_from_args(sweep, args: argparse.Namespace, *, measure: bool = True):
    """The plan of `sweep` under the flags of `movelab sweep`; `measure` False: time nothing."""
    from movelab.plan import load_profile, plan_sweep

    profile = load_profile(args.profile) if args.profile else None
    jobs = args.jobs or (len(sweep.runs) if args.executor == "slurm" else 2)
    return plan_sweep(sweep, profile=profile, threads=args.threads_per_job, jobs=max(1, jobs),
                      ranks=args.gpus_per_job if profile else 1,
                      measure=measure and not args.no_timing, retime=measure and args.retime,
                      log=lambda line: print(line, file=sys.stderr, flush=True))


def cmd_plan(args: argparse.Namespace) -> None:
    import torch

    from movelab.plan import load_profile, plan_runs

    run = run_config_from_args(args)
    profile = load_profile(args.profile) if args.profile else None
    plan = plan_runs(run.model.label, [(run, "", [], "new")], profile=profile,
                     threads=args.threads or torch.get_num_threads(), ranks=args.ranks,
                     measure=not args.no_timing, retime=args.retime, cache_dir=args.cache_dir,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    print_plan(plan, args.json)


def cmd_demo(args: argparse.Namespace) -> None:
    from movelab.demo import draw_figures, format_fits, format_table, run_demo

    try:
        runs_csv = run_demo(args.out, jobs=args.jobs)
    except RuntimeError as err:
        raise UsageError(str(err)) from None
    print(f"\n{format_table(runs_csv)}\n\nrows: {runs_csv}\n")
    print("val_bpb = E + A C^-alpha against training FLOPs C, 95% bootstrap intervals:")
    print(format_fits(args.out))
    figures = draw_figures(args.out)
    print(f"\nfigures: {len(figures)} files in {figures[0].parent}")


def cmd_bench(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from movelab.bench import DEFAULT_PRESETS, DEFAULT_VARIANTS, format_bench, run_bench

    def listed(values):  # repeatable flags that also take comma lists
        return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]

    rows = run_bench(listed(args.preset) or DEFAULT_PRESETS,
                     listed(args.variants) or DEFAULT_VARIANTS,
                     batch_size=args.batch_size, seq_len=args.seq_len, steps=args.steps,
                     warmup=args.warmup, threads=args.threads, device=args.device,
                     compile=args.compile, matmul_size=args.matmul_size, rounds=args.rounds,
                     memory_update=args.memory_update,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps([asdict(row) for row in rows], indent=1) if args.json else format_bench(rows))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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

    train = sub.add_parser(
        "train", help="train one model on text or images and write its result record",
        description="Train one model (any preset, value path and density) on a text corpus "
                    "(validation bits per byte along the way) or, with --task image, on "
                    "Fashion-MNIST codes (bits per image token, then FID, class accuracy and "
                    "samples.png from sampled images); a result.json and curve.csv in --out; "
                    "checkpoints so that --resume continues a stopped run.",
        epilog="examples:\n  movelab train --preset cpu-d2 --value-path move --density 4 "
               "--tokens 2000000\n  movelab train --task image --preset cpu-d4 --value-path move "
               "--density 4 --tokens-per-param 2 --batch-size 32\n"
               "  movelab train --from results/<sweep>/runs/<id>/result.json --out /tmp/rerun",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(train)
    add_train_args(train)
    train.set_defaults(func=cmd_train)

    plan = sub.add_parser(
        "plan", help="before training: one run's parameters, tokens, FLOPs, epochs, steps, "
                     "wall clock, peak memory and checkpoint disk",
        description="Plan one run given by the train flags (or --from a record) without training "
                    "it: parameters (total, active, memory), tokens, steps, training FLOPs, "
                    "epochs of the corpus (prepared and cached to count it; a warning above "
                    "1.0), wall clock (a few timed steps here, cached, or --profile), peak "
                    "memory against the machine's and the checkpoint's size.",
        epilog="examples:\n  movelab plan --preset cpu-d10 --tokens-per-param 1 --batch-size 8 "
               "--threads 1\n  movelab plan --preset gpu-d12 --value-path move --density 8 "
               "--tokens-per-param 12 --batch-size 256 --profile h200 --ranks 8 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(plan)
    add_train_args(plan)
    add_plan_args(plan)
    plan.add_argument("--ranks", type=int, default=1,
                      help="data-parallel processes (torchrun ranks, GPUs) sharing the batch "
                           "(default 1)")
    plan.set_defaults(func=cmd_plan)

    cfg_scale = sub.add_parser(
        "cfg-scale", help="choose the classifier-free guidance scale of a trained image run",
        description="Sample a finished image run (its model.pt) at several guidance scales and "
                    "print FID and class accuracy at each. FID here is against 10k *training* "
                    "images, so the choice never looks at the test set that runs are scored on.",
        epilog="example:\n  movelab cfg-scale runs/<id> --scales 1,1.5,2,3 --samples 2000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cfg_scale.add_argument("run_dir", type=Path, help="a finished image run (result.json, model.pt)")
    cfg_scale.add_argument("--scales", default="1,1.5,2,3", help="comma list (default 1,1.5,2,3)")
    cfg_scale.add_argument("--samples", type=whole_number(2), default=2000,
                           help="generated images per scale (default 2000)")
    cfg_scale.add_argument("--seed", type=whole_number(0), default=0,
                           help="sampling seed (default 0)")
    cfg_scale.add_argument("--threads", type=whole_number(1),
                           help="torch CPU threads (default: torch's)")
    cfg_scale.add_argument("--cache-dir", type=Path,
                           help="data cache (default $MOVELAB_CACHE, else ~/.cache/movelab)")
    cfg_scale.add_argument("--json", action="store_true", help="print the rows as JSON")
    cfg_scale.set_defaults(func=cmd_cfg_scale)

    inspect = sub.add_parser(
        "inspect", help="a run's memory diagnostics: slot effective count, gates, BPB by "
                        "token frequency, bank row occurrences",
        description="Print the diagnostics of a finished run (movelab/diagnostics.py): the "
                    "participation ratio of each token's slot updates (1: the slots move in "
                    "lockstep; M: independently), gate statistics per layer, validation bits "
                    "per byte by the training frequency of the input token, and how often the "
                    "bank's rows were trained. Memory runs record them in result.json; "
                    "--recompute (or a run without them) computes them from model.pt.",
        epilog="example:\n  movelab inspect results/calib-recall/runs/<id>",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    inspect.add_argument("run_dir", type=Path, help="a finished run (result.json [, model.pt])")
    inspect.add_argument("--recompute", action="store_true",
                         help="compute from model.pt and the data instead of reading result.json")
    inspect.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    inspect.add_argument("--cache-dir", type=Path,
                         help="data cache (default $MOVELAB_CACHE, else ~/.cache/movelab)")
    inspect.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    inspect.set_defaults(func=cmd_inspect)

    from movelab.sweep import EXECUTORS, JobOptions

    sweep = sub.add_parser(
        "sweep", help="run, inspect or collect a sweep defined in results/<name>/sweep.toml",
        description="A sweep is results/<name>/sweep.toml (see movelab/sweep.py for the format). "
                    "`run` trains every run that is not done (found by config hash), resuming "
                    "stopped ones; `status` lists done / running / stopped / missing; `collect` "
                    "rewrites results/<name>/runs.csv from the finished runs; `plan` prints what "
                    "every run will cost before it trains (see `movelab plan --help`).",
        epilog="examples:\n  movelab sweep plan cpu-text\n"
               "  movelab sweep plan gpu-paper --profile h200 --gpus-per-job 8 --json\n"
               "  movelab sweep run cpu-text --jobs 2 --threads-per-job 1\n"
               "  movelab sweep run gpu-text --executor slurm --partition gpu --gpus-per-job 8 "
               "--cpus-per-job 64 --time-limit 720",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("action", choices=("run", "status", "collect", "plan"))
    sweep.add_argument("name", help="the sweep: a folder of --results-dir holding sweep.toml")
    sweep.add_argument("--results-dir", type=Path, default=Path("results"),
                       help="where sweeps live (default ./results)")
    sweep.add_argument("--jobs", type=whole_number(1), help="runs at once (default 2; with --executor "
                                                "slurm every missing run is queued at once)")
    sweep.add_argument("--threads-per-job", type=whole_number(1), default=1,
                       help="torch threads per run (default 1: on 2 cores two 1-thread runs "
                            "beat one 2-thread run, see docs/research-log.md)")
    sweep.add_argument("--group", help="only the runs of this group of the sweep")
    sweep.add_argument("--executor", choices=EXECUTORS, default="subprocess",
                       help="subprocess (default): child processes here; local: submitit jobs "
                            "here; slurm: one SLURM job per run (submitit logs in "
                            "results/<name>/submitit/)")
    d = JobOptions()
    g = sweep.add_argument_group("jobs of --executor slurm (and the time limit of local)")
    g.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    g.add_argument("--gpus-per-job", type=whole_number(0), default=d.gpus_per_job,
                   help=f"GPUs per run, one torchrun rank each; 0: one CPU process "
                        f"(default {d.gpus_per_job})")
    g.add_argument("--cpus-per-job", type=whole_number(1), default=d.cpus_per_job,
                   help=f"CPUs per run, shared out as torch threads of its ranks "
                        f"(default {d.cpus_per_job})")
    g.add_argument("--time-limit", type=whole_number(1), default=d.time_limit,
                   metavar="MINUTES",
                   help=f"per job; a run stopped by it resumes on the next `sweep run` "
                        f"(default {d.time_limit})")
    add_tracker_arg(sweep)
    add_plan_args(sweep)
    sweep.set_defaults(func=cmd_sweep)

    demo = sub.add_parser(
        "demo", help="the main job: a reduced real sweep on the CPU, its fits and figures (~15 min)",
        description="Prepare the default corpus, train standard, LaVE x1, MoVE x1 and MoVE x4 at "
                    "depths 2, 4, 6 and 8 into a scratch folder, print parameters, FLOPs per "
                    "token and validation bits per byte side by side, fit val_bpb = E + A C^-alpha "
                    "per value path with bootstrap intervals, and draw the sweep's figures into "
                    "<out>/demo/figures. Rerunning reuses finished runs.")
    demo.add_argument("--out", type=Path, default=Path("scratch"),
                      help="scratch folder (default ./scratch; committed results are untouched)")
    demo.add_argument("--jobs", type=whole_number(1), default=2, help="runs at once (default 2)")
    demo.set_defaults(func=cmd_demo)

    from movelab.training.config import TrainConfig

    bench = sub.add_parser(
        "bench", help="training-step speed, memory and MFU of the value paths side by side "
                      "(a benchmark on random tokens, no corpus)",
        description="Time training steps (forward, backward, optimizer) of every preset x "
                    "variant on random tokens with the real optimizers; report tokens/s, peak "
                    "memory, model-FLOP utilisation against a matmul peak measured in the same "
                    "run, and each variant's step time over the standard model's next to its "
                    "analytic FLOP ratio (goal: MoVE x1-x8 within 5 points). The standard model "
                    "is always included as the baseline.",
        epilog="examples:\n  movelab bench\n"
               "  movelab bench --preset cpu-d2 --variants \"standard,move x4\" --steps 5\n"
               "  movelab bench --preset gpu-d12 --device cuda --compile --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--preset", action="append", metavar="NAME",
                       help="repeatable or a comma list (default: cpu-d4,cpu-d8)")
    bench.add_argument("--variants", action="append", metavar="LIST",
                       help="comma list in the sweep's language, e.g. \"standard,lave x1,move "
                            "x4,move M=8\" (default: standard, lave x1, x2, move x1, x2, x4, x8)")
    bench.add_argument("--batch-size", type=int,
                       help=f"sequences per step (default {TrainConfig.batch_size})")
    bench.add_argument("--seq-len", type=int, help="tokens per sequence (default: the preset's)")
    bench.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    bench.add_argument("--memory-update", choices=("dense", "lazy"), default="dense",
                       help="the memory's optimizer step: dense AdamW (default) or lazy "
                            "SparseAdam on the rows a batch touches (eager only)")
    bench.add_argument("--rounds", type=int, default=3,
                       help="interleaved repeats of the whole plan, each model fresh; the table "
                            "shows the median round and the min-max over rounds (default 3)")
    bench.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    bench.add_argument("--compile", action="store_true",
                       help="also time torch.compile(model) and its speedup over eager")
    bench.add_argument("--matmul-size", type=int, default=2048, metavar="N",
                       help="the peak is timed on fp32 N x N matmuls (default 2048)")
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.set_defaults(func=cmd_bench)
    return parser


def _run_errors() -> tuple[type[Exception], ...]:
    """Errors of the data and training layers that are the user's to fix (imported lazily so
    `movelab flops` does not load torch)."""
    if "movelab.training.loop" not in sys.modules and "movelab.data" not in sys.modules:
        return ()
    from movelab.data import DataError
    from movelab.training.loop import RunError
    from movelab.training.record import RecordError

    return DataError, RunError, RecordError


def _interrupted() -> tuple[type[BaseException], ...]:
    if "movelab.training.loop" not in sys.modules:
        return (KeyboardInterrupt,)
    from movelab.training.loop import Interrupted

    return KeyboardInterrupt, Interrupted


INTERRUPTED = 130  # the exit status of every interrupt (SIGINT or SIGTERM), as shells use


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, UsageError, *_run_errors()) as err:
        print(f"movelab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `movelab sweep status NAME | head`
        sys.stderr.close()
        return 0
    except _interrupted() as err:
        print(f"movelab {args.command}: interrupted{f': {err}' if str(err) else ''}",
              file=sys.stderr)
        return INTERRUPTED
    return 0
