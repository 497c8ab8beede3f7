"""Command line: `movelab flops | train | sweep | demo | figures | bench ...` (also
`python -m movelab`).

Bad input (an impossible config, a missing dataset) ends with one line naming the problem and
the fix, and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from movelab.accounting import costs_record, format_costs, format_ladder, ladder_records
from movelab.config import LADDERS, ConfigError
from movelab.flags import (UsageError, add_model_args, add_train_args, config_from_args,
                           read_record, run_config_from_args)


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


def cmd_flops(args: argparse.Namespace) -> None:
    if args.ladder:
        records = ladder_records(list(LADDERS) if args.ladder == "all" else [args.ladder])
        print(json.dumps(records, indent=1) if args.json else format_ladder(records))
        return
    record = costs_record(config_from_args(args))
    print(json.dumps(record, indent=1) if args.json else format_costs(record))


def add_run_args(parser: argparse.ArgumentParser) -> None:
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
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="train through torch.compile, or --no-compile: eager (default: compiled "
                        "for a CPU run of 1e13 training FLOPs or more, eager otherwise)")
    add_tracker_arg(g)


def add_tracker_arg(group) -> None:
    from movelab.training.trackers import TRACKERS

    group.add_argument("--tracker", action="append", choices=TRACKERS,
                       help="also log the curve rows and the config to tensorboard (event files "
                            "in the run dir) or wandb (offline unless logged in); repeatable; "
                            "none by default (default: $MOVELAB_TRACKERS, which `movelab sweep "
                            "run --tracker` sets); needs pip install -e '.[trackers]'")


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from movelab.training.loop import train
    from movelab.training.record import result_summary
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


def cmd_inspect(args: argparse.Namespace) -> None:
    from movelab import diagnostics, inspection
    from movelab.training.record import result_summary

    path = args.run_dir / "result.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read {path} ({err}); give a finished run's folder") from None
    found = result.get("diagnostics")
    source = "recorded in result.json"
    if args.save and found is not None:
        raise UsageError(f"{path} already records the diagnostics, which the analysis reads; "
                         "--save is for runs that record none (standard models)")
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
        if args.save:
            source += f", saved to {inspection.save_diagnostics(args.run_dir, found)}"
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

    if args.from_dir is not None and args.action != "collect":
        raise UsageError(f"--from applies to `movelab sweep collect`, not `{args.action}`")
    sweep = sweeps.load_sweep(args.name, args.results_dir)
    if args.action == "plan":
        print_plan(plan_sweep_from_args(sweep, args), args.json)
    elif args.action == "status":
        print(sweeps.format_status(sweep))
    elif args.action == "collect":
        if args.from_dir is not None:
            if not args.no_diagnostics and (args.from_dir / sweep.name / "runs").is_dir():
                from movelab import inspection

                inspection.save_missing_diagnostics(args.from_dir / sweep.name / "runs")
            copied = sweeps.import_finished(sweep, args.from_dir)
            print(f"copied the records of {len(copied)} run(s) from {args.from_dir / sweep.name}"
                  + "".join(f"\n  {run_id}" for run_id in copied))
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


def cmd_figures(args: argparse.Namespace) -> None:
    from movelab.scaling.figures import write_all_figures

    given = {"out_dir": args.out, "results_dir": args.results_dir, "sweep": args.sweep,
             "image_sweep": args.image_sweep, "reference_dir": args.reference_dir,
             "bootstrap": args.bootstrap}
    try:  # what is not given takes write_all_figures' defaults
        paths = write_all_figures(**{k: v for k, v in given.items() if v is not None})
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from None
    for path in paths:
        print(path)


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
                     precisions=tuple(listed(args.precision)) or ("auto",),
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
    add_run_args(train)
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
    add_run_args(plan)
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
    inspect.add_argument("--save", action="store_true",
                         help="for a run whose result.json records no diagnostics (a standard "
                              "model): write the ones computed from its model.pt to the run's "
                              "diagnostics.json, beside result.json (which stays as the run "
                              "wrote it), where the analysis reads them")
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
                    "rewrites results/<name>/runs.csv from the finished runs (with --from, after "
                    "copying in the runs finished elsewhere); `plan` prints what "
                    "every run will cost before it trains (see `movelab plan --help`).",
        epilog="examples:\n  movelab sweep plan cpu-text\n"
               "  movelab sweep plan gpu-paper --profile h200 --gpus-per-job 8 --json\n"
               "  movelab sweep run cpu-text --jobs 2 --threads-per-job 1\n"
               "  movelab sweep collect decouple-prose --from ../run-prose/results\n"
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
    sweep.add_argument("--from", dest="from_dir", type=Path, metavar="RESULTS_DIR",
                       help="collect: first copy the records (result.json, curve.csv, run.json, "
                            "diagnostics.json, artefacts; not weights, checkpoints or logs) of "
                            "the runs finished under RESULTS_DIR/<name>/runs/ (a worktree's or "
                            "another machine's results/) that are not here; nothing here is "
                            "overwritten. Before, the diagnostics of its text runs that record "
                            "none (standard models) are computed from their model.pt into "
                            "diagnostics.json there (`movelab inspect --save`)")
    sweep.add_argument("--no-diagnostics", action="store_true",
                       help="collect --from: copy only, compute no diagnostics")
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

    figures = sub.add_parser(
        "figures", help="draw the figures of the committed sweeps (results/figures; make figures)",
        description="Draw every figure of a text sweep (accounting, scaling, memory "
                    "decoupling, exchange rate, joint law, ablations, repetition, fit "
                    "validation), and image_scaling when the image sweep has rows, as PNG and "
                    "SVG, byte-identical on a rerun (fixed bootstrap seeds, SVG hash salt, no "
                    "dates or software versions in the files); prints the paths written.",
        epilog="examples:\n  movelab figures   (what `make figures` runs)\n"
               "  movelab figures --results-dir scratch --sweep demo --out /tmp/figures",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    figures.add_argument("--out", type=Path,
                         help="folder for the PNG and SVG files (default: <results-dir>/figures)")
    figures.add_argument("--results-dir", type=Path,
                         help="folder holding <sweep>/runs.csv (default: ./results, or the "
                              "nearest results/ above the current directory)")
    figures.add_argument("--sweep", help="the text sweep (default cpu-text)")
    figures.add_argument("--image-sweep",
                         help="the image sweep, drawn when it has rows (default cpu-image)")
    figures.add_argument("--reference-dir", type=Path,
                         help="folder with chinchilla_fig4_points.csv (default: reference/ beside "
                              "--results-dir; skipped if absent)")
    figures.add_argument("--bootstrap", type=whole_number(1),
                         help="bootstrap refits per fit (default 200)")
    figures.set_defaults(func=cmd_figures)

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
                            "x4,move M=8\", and \"reference\": a minimal GPT-2 at the "
                            "preset's shape, the throughput yardstick (default: standard, "
                            "lave x1, x2, move x1, x2, x4, x8)")
    bench.add_argument("--batch-size", type=int,
                       help=f"sequences per step (default {TrainConfig.batch_size})")
    bench.add_argument("--seq-len", type=int, help="tokens per sequence (default: the preset's)")
    bench.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    bench.add_argument("--memory-update", choices=("dense", "lazy"), default="dense",
                       help="the memory's optimizer step: dense AdamW (default) or lazy "
                            "SparseAdam on the rows a batch touches (eager only)")
    bench.add_argument("--precision", action="append", metavar="LIST",
                       help="comma list of auto, fp32, bf16 (TrainConfig.precision), each "
                            "benched interleaved in every round; bf16 rows note their speedup "
                            "over fp32 when both are benched (default auto: fp32 on the CPU, "
                            "bf16 autocast on CUDA)")
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
