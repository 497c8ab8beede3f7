"""Sweeps as data: results/<sweep>/sweep.toml expands into runs; `movelab sweep run` trains
what is missing (found by config hash), resumes what was stopped, and consolidates every
result into results/<sweep>/runs.csv. Each run trains in its own process: a subprocess here,
a submitit job on this machine (`local`) or a SLURM job (`slurm`), with submitit's logs in
results/<sweep>/submitit/.

sweep.toml:
    description = "..."
    [train]                  # TrainConfig fields shared by every run (corpus, batch_size, ...)
    [image]                  # image sweeps (corpus = "fashion-mnist"): ImageConfig fields
                             #   (cfg_scale, fid_samples, ...); vocab_size and seq_len follow
    [budget]                 # one rule for the whole sweep:
    tokens_per_param = 1.0   #   tokens = this x active params of the *standard* model at that
                             #   depth, so every value path at a depth sees the same tokens;
                             #   or tokens = N: N tokens for every run
    [[group]]                # any number of groups; a run listed twice is trained once
    train = {memory_lr_scaling = "inv_sqrt"}   # optional: TrainConfig fields of this group only
    name = "grid"
    role = "main"            # optional: what the analysis uses its runs for (movelab.schema.ROLES;
                             #   by default from the name: grid main, seeds seed, controls control)
    depths = [2, 4]
    seeds = [0]
    model = {vocab_size = 1024}  # optional: model fields of the whole group (a vocabulary axis)
    variants = ["standard", "lave x1", "move x4", "move M=3", "move x1 g0=1", "lave x1 +g0",
                {label = "dense, width 64", value_path = "standard", width = 64, heads = 2}]
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from movelab import diagnostics, schema
from movelab.accounting import PARAM_GROUPS, analytic_costs
from movelab.config import (VALUE_PATHS, ConfigError, ModelConfig, build_config, check_number,
                            unknown_keys)
from movelab.data.cache import write_atomically
from movelab.training import claim, record
from movelab.training.claim import LOCK
from movelab.training.config import ImageConfig, RunConfig, TrainConfig, is_image_corpus
from movelab.training.record import result_summary
from movelab.variant import MODEL_KEYS, Variant

RUNS_CSV_COLUMNS = schema.RUNS_COLUMNS  # results/README.md's table, column by column
# fields recorded only when a run changes them (movelab.config.recipe_field)
RECIPE_KEYS = frozenset(f.name for cls in (ModelConfig, TrainConfig)
                        for f in dataclasses.fields(cls) if f.metadata.get("omit_default"))
EXECUTORS = ("subprocess", "local", "slurm")
POLL_SECONDS, REPORT_SECONDS = 1.0, 300.0
SQUEUE_SECONDS = 10.0  # how often a sweep asks squeue about its SLURM jobs


@dataclass
class PlannedRun:
    run: RunConfig
    variant: str  # Variant.text
    groups: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # of its groups (movelab.schema.ROLES)

    @property
    def role(self) -> str:
        return schema.run_role(self.roles)

    @property
    def run_id(self) -> str:
        return self.run.hash()

    @property
    def cost(self) -> float:
        return self.run.train.tokens * analytic_costs(self.run.model).flops_per_token_train


@dataclass
class Sweep:
    name: str
    directory: Path
    description: str
    runs: list[PlannedRun]

    def run_dir(self, planned: PlannedRun) -> Path:
        return self.directory / "runs" / planned.run_id

    def status(self, planned: PlannedRun) -> str:
        directory = self.run_dir(planned)
        if (directory / "result.json").exists():
            return "done"
        holder = claim.holder(directory)
        if holder and holder.startswith("slurm "):  # squeue lists a job while it lives
            job = holder.split()[1]
            states = claim.slurm_queue([job])
            if states is None or job in states:
                return "queued" if states and states[job] == "PENDING" else "running"
        elif claim.alive(holder):
            return "running"
        if (directory / "checkpoint.pt").exists():
            return "stopped"
        return "missing"


TOP_KEYS = ("description", "train", "image", "budget", "group")
BUDGET_KEYS = ("tokens", "tokens_per_param")
GROUP_KEYS = ("name", "role", "depths", "seeds", "variants", "model", "train")
# set by the sweep itself: the horizon by [budget], the seed by each group's seeds
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("tokens", "tokens_per_param", "flops", "seed"))


def load_sweep(name: str, results_dir: Path = Path("results")) -> Sweep:
    """The sweep results_dir/name/sweep.toml, read strictly: an unknown or misspelt key, a
    missing one or a value out of range is a ConfigError naming the key and what is allowed."""
    directory = Path(results_dir) / name
    spec_path = directory / "sweep.toml"
    if not spec_path.exists():
        known = sorted(p.parent.name for p in Path(results_dir).glob("*/sweep.toml"))
        raise ConfigError(f"no sweep {name!r}: {spec_path} does not exist; known sweeps in "
                          f"{results_dir}: {', '.join(known) or 'none'}")
    try:
        spec = tomllib.loads(spec_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{spec_path} is not valid TOML: {err}") from None
    _check_table(spec, f"{spec_path}", TOP_KEYS)
    train_defaults = _check_table(spec.get("train", {}), f"{spec_path} [train]", TRAIN_KEYS,
                                  hint="the horizon is set by [budget], seeds by each group")
    budget = _check_table(spec.get("budget", {}), f"{spec_path} [budget]", BUDGET_KEYS)
    if len({"tokens_per_param", "tokens"} & set(budget)) != 1:
        raise ConfigError(f"{spec_path} needs one rule in [budget]: tokens_per_param = R (R x the "
                          "standard model's active parameters at each depth) or tokens = N (N at "
                          "every depth)")
    for key, rule in (("tokens", dict(whole=True, minimum=1)), ("tokens_per_param", dict(above=0))):
        if key in budget:
            check_number(budget[key], f"{spec_path} [budget] {key}", **rule)
    if not isinstance(spec.get("description", ""), str):
        raise ConfigError(f"{spec_path}: description must be a string")
    groups = spec.get("group", [])
    if not isinstance(groups, list) or not groups:
        raise ConfigError(f"{spec_path} has no [[group]]: add at least one, with name, depths "
                          "and variants")
    image, shape = None, {}
    try:
        if is_image_corpus(train_defaults.get("corpus", TrainConfig.corpus)):
            image = ImageConfig.from_dict(spec.get("image", {}), f"{spec_path} [image]")
            shape = {"vocab_size": image.layout.vocab_size, "seq_len": image.layout.seq_len}
        elif "image" in spec:
            raise ConfigError(f"{spec_path} has an [image] table but its corpus is text; set "
                              "[train] corpus = \"fashion-mnist\" or drop the table")
        TrainConfig(**{**train_defaults, "tokens": 1})  # [train] alone, before any group
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{spec_path} [train]: {err}" if "sweep.toml" not in str(err)
                          else str(err)) from None
    planned: dict[str, PlannedRun] = {}
    for i, group in enumerate(groups):
        where = f"{spec_path} group {i + 1}"
        _check_table(group, where, GROUP_KEYS)
        if not isinstance(group.get("name"), str) or not group["name"]:
            raise ConfigError(f"{where} needs a name = \"...\"")
        where = f"{spec_path} group {group['name']!r}"
        if group.get("role", schema.ROLES[0]) not in schema.ROLES:
            raise ConfigError(f"{where}: unknown role {group['role']!r}; choose one of "
                              f"{', '.join(schema.ROLES)}")
        for key, required in (("depths", True), ("seeds", False), ("variants", True)):
            if key not in group and not required:
                continue
            if not isinstance(group.get(key), list) or not group[key]:
                raise ConfigError(f"{where} needs {key} = [...], a non-empty list")
        for key in ("depths", "seeds"):
            for value in group.get(key, []):
                check_number(value, f"{where}: each of {key}", whole=True, minimum=0)
        base = {**shape, **_check_table(group.get("model", {}), f"{where} model", MODEL_KEYS)}
        group_train = {**train_defaults,
                       **_check_table(group.get("train", {}), f"{where} train", TRAIN_KEYS)}
        try:
            for depth in group["depths"]:
                _plan_depth(planned, group, depth, base, group_train, budget, image, where)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    return Sweep(name, directory, spec.get("description", ""), list(planned.values()))


def _check_table(table, where: str, allowed, hint: str = "") -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    unknown = set(table) - set(allowed)
    if unknown:
        err = unknown_keys(where, unknown, allowed)
        raise ConfigError(f"{err} ({hint})" if hint else str(err))
    return table


def _plan_depth(planned: dict, group: dict, depth: int, base: dict, train_defaults: dict,
                budget: dict, image, where: str) -> None:
    """Add the runs of one depth of a group to `planned` (keyed by run id)."""
    standard = build_config(depth=depth, **base)
    batch_tokens = train_defaults.get("batch_size", TrainConfig.batch_size) * standard.seq_len
    wanted = budget.get("tokens") or (budget["tokens_per_param"]
                                      * analytic_costs(standard).params_active)
    tokens = round(wanted / batch_tokens) * batch_tokens
    for spec in group["variants"]:
        variant = Variant.parse(spec)
        model = build_config(**{"depth": depth, **base, **variant.model_args})
        for seed in group.get("seeds", [0]):
            run = RunConfig(model, TrainConfig(**{**train_defaults, "tokens": max(
                tokens, batch_tokens), "seed": seed}), image)
            entry = planned.setdefault(run.hash(), PlannedRun(run, variant.text))
            if group["name"] not in entry.groups:
                entry.groups.append(group["name"])
                entry.roles.append(schema.group_role(group["name"], group.get("role")))


@dataclass(frozen=True)
class JobOptions:
    """What each submitit job asks for (--executor local uses only the time limit)."""
    partition: str | None = None   # SLURM partition (default: the cluster's)
    gpus_per_job: int = 1          # > 0: the run trains under torchrun, one rank per GPU
    cpus_per_job: int = 8
    time_limit: int = 24 * 60      # minutes; a run stopped by it resumes on the next sweep run


@dataclass
class Started:
    """A run started by a starter: `poll` gives None while it runs, then its exit status;
    `stop` asks it to stop at a checkpoint (SIGTERM); `detached` runs (SLURM jobs) go on
    without this process, so stopping a sweep leaves them and their claims alone; `holder`
    names who holds the run's claim while it runs, when that is not this process."""
    poll: Callable[[], int | None]
    stop: Callable[[], None] = lambda: None
    detached: bool = False
    holder: str | None = None


# Starts one run (whose folder this process has claimed).
Start = Callable[[PlannedRun], Started]
STOP_SECONDS = 600.0  # how long a stopped sweep waits for its runs to checkpoint and exit


def run_sweep(sweep: Sweep, *, jobs: int | None = 2, threads_per_job: int = 1,
              only_group: str | None = None, executor: str = "subprocess",
              options: JobOptions = JobOptions(), log=print) -> int:
    """Train every run not done yet, `jobs` at a time (None: all at once), each in its own
    process or job as `executor` says. Before a run starts, this process claims its folder
    (movelab.training.claim), so sweeps run side by side share out the runs and train each
    once. SIGINT or SIGTERM stops the sweep: its runs are told to stop (they checkpoint),
    runs.csv is consolidated, and KeyboardInterrupt is raised. Returns the number of failures."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    todo = [p for p in sweep.runs if (only_group is None or only_group in p.groups)
            and sweep.status(p) in ("missing", "stopped")]
    todo.sort(key=lambda p: p.cost)  # cheap runs first: early rows span every depth
    start, how = starter(sweep, executor, threads_per_job, options)
    log(f"{sweep.name}: {len(todo)} runs to train ({_done(sweep)} done), "
        f"{jobs or 'all'} at a time {how}")
    running: list[tuple[PlannedRun, Started, str, float]] = []
    failures, last_report, at_once = 0, time.time(), jobs or len(todo)
    with _signals_interrupt():
        try:
            _prepare(sweep, todo, log)
            while todo or running:
                while todo and len(running) < at_once:
                    planned = todo.pop(0)
                    launched = launch(sweep, planned, start, log)
                    if launched is not None:
                        running.append(launched)
                if not running:
                    continue
                time.sleep(POLL_SECONDS)
                for item in list(running):
                    planned, started, mine, began = item
                    status = started.poll()
                    if status is None:
                        continue
                    running.remove(item)
                    claim.release(sweep.run_dir(planned), mine)
                    if status == 0:
                        result = _read_result(sweep.run_dir(planned) / "result.json")
                        log(f"  done   {planned.run_id}  d{planned.run.model.depth} "
                            f"{planned.variant}: {result_summary(result)} in {time.time() - began:.0f}s")
                        consolidate(sweep)
                    else:
                        failures += 1
                        stopped = sweep.status(planned) == "stopped"  # a time limit, scancel
                        log(f"  {'stopped' if stopped else 'FAILED'} {planned.run_id}  "
                            f"d{planned.run.model.depth} {planned.variant} (exit {status}"
                            + ("; the next `sweep run` resumes its checkpoint" if stopped
                               else "")
                            + f"); see {sweep.run_dir(planned) / 'train.log'}"
                            + (f" and {sweep.directory / 'submitit'}"
                               if executor != "subprocess" else ""))
                if running and time.time() - last_report > REPORT_SECONDS:
                    log(f"  waiting: {len(running)} started, {len(todo)} to start, "
                        f"{_done(sweep)} of {len(sweep.runs)} done")
                    last_report = time.time()
        except KeyboardInterrupt:
            stopped = _stop(sweep, running, log)
            consolidate(sweep)
            raise KeyboardInterrupt(f"sweep {sweep.name} stopped; {stopped} run(s) were stopped "
                                    "at a checkpoint; the same command continues them") from None
    consolidate(sweep)
    return failures


def _prepare(sweep: Sweep, todo: list[PlannedRun], log) -> None:
    """Fill the data cache once here, not in every job at the same time, and warn where this
    machine's build of a corpus is none the sweep's finished runs trained on."""
    from movelab.training.tasks import task_of

    prepared, finished = set(), _builds(_finished_results(sweep))
    for planned in todo:
        run = planned.run
        key = (run.train.corpus, run.model.vocab_size, run.image)
        if key not in prepared:
            prepared.add(key)
            task = task_of(run)
            data = task.prepare(run, progress=sys.stderr.isatty())
            task.fill_caches(data)
            corpus, build = data.describe()["corpus"], data.describe()["content_hash"]
            if finished.get(corpus) and build not in finished[corpus]:
                log(f"  warning: this machine's {corpus} is build {build} (data.content_hash); "
                    f"the sweep's finished runs on it trained on {_counted(finished[corpus])}: "
                    "runs on different builds do not share batches at a seed")
                finished[corpus][build] = 0  # warned once


def launch(sweep: Sweep, planned: PlannedRun, start: Start, log):
    """Claim the run's folder and start it; None when it is done or another process has it."""
    directory = sweep.run_dir(planned)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        mine = claim.claim(directory)
    except claim.Claimed as err:
        log(f"  skip   {planned.run_id}  d{planned.run.model.depth} {planned.variant}: "
            f"being trained by {err.holder}")
        return None
    if (directory / "result.json").exists():  # finished by another sweep meanwhile
        claim.release(directory, mine)
        return None
    try:
        started = start(planned)
    except BaseException:
        claim.release(directory, mine)
        raise
    if started.holder is not None and claim.replace(directory, mine, started.holder):
        mine = started.holder
    log(f"  start  {planned.run_id}  d{planned.run.model.depth} {planned.variant} "
        f"seed {planned.run.train.seed}")
    return planned, started, mine, time.time()


def _stop(sweep: Sweep, running: list, log) -> int:
    """Stop the runs this sweep started (not detached SLURM jobs), wait until they have
    checkpointed and exited, and drop their claims; returns how many were stopped."""
    attached = [item for item in running if not item[1].detached]
    log(f"  stopping {len(attached)} run(s); each checkpoints first")
    for _, started, _, _ in attached:
        started.stop()
    deadline = time.time() + STOP_SECONDS
    while any(started.poll() is None for _, started, _, _ in attached) and time.time() < deadline:
        time.sleep(0.2)
    for planned, started, mine, _ in attached:
        claim.release(sweep.run_dir(planned), mine)
    return len(attached)


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM ends the sweep like Ctrl-C (KeyboardInterrupt), and once it has, further
    signals are ignored while the runs checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _read_result(path: Path) -> dict:
    from movelab.training.record import read_result

    return read_result(path)


def _done(sweep: Sweep) -> int:
    return sum(sweep.status(p) == "done" for p in sweep.runs)


def starter(sweep: Sweep, executor: str, threads_per_job: int,
            options: JobOptions) -> tuple[Start, str]:
    """How runs start under `executor`, and a phrase that says so."""
    if executor == "subprocess":
        return _process_starter(sweep, threads_per_job), f"with {threads_per_job} thread(s) each"
    import submitit

    folder = sweep.directory / "submitit" / "%j"
    if executor == "local":
        local = submitit.LocalExecutor(folder)
        local.update_parameters(timeout_min=options.time_limit)
        return (_job_starter(sweep, local, socket.gethostname(), threads_per_job),
                f"with {threads_per_job} thread(s) each, as submitit jobs on this machine")
    if executor == "slurm":
        try:
            cluster = submitit.AutoExecutor(folder, cluster="slurm")
        except RuntimeError as err:  # no srun here
            raise ConfigError(f"--executor slurm needs a SLURM cluster: {err}") from None
        cluster.update_parameters(**_slurm_parameters(sweep, options))
        threads = options.cpus_per_job // max(1, options.gpus_per_job)
        return (_job_starter(sweep, cluster, "slurm", threads, options.gpus_per_job,
                             queue=_SlurmQueue()),
                f"as SLURM jobs of {options.gpus_per_job} GPU(s), {options.cpus_per_job} CPUs, "
                f"{options.time_limit} min on partition {options.partition or '(default)'}")
    raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")


def _slurm_parameters(sweep: Sweep, options: JobOptions) -> dict:
    """submitit AutoExecutor parameters of one job: one node, one task that runs the command."""
    return {"name": f"movelab-{sweep.name}", "timeout_min": options.time_limit, "nodes": 1,
            # SLURM's warning (SIGUSR2, this many seconds before the time limit, give or take
            # the 30 s between its checks) stops the run at a checkpoint; at most a quarter of
            # the job, so that a short job is not warned as it starts
            "slurm_signal_delay_s": min(90, options.time_limit * 15),
            "tasks_per_node": 1, "cpus_per_task": options.cpus_per_job,
            "gpus_per_node": options.gpus_per_job,
            **({"slurm_partition": options.partition} if options.partition else {})}


def train_command(directory: Path, threads: int, gpus: int = 0) -> list[str]:
    """`movelab train` of the run in `directory`, resuming its checkpoint if it has one; with
    gpus, under torchrun with one rank per GPU."""
    launcher = [sys.executable]
    if gpus:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
    return [*launcher, "-m", "movelab", "train", "--from", str(directory / "run.json"),
            "--out", str(directory), "--resume", "--threads", str(threads), "--no-progress"]


def _process_starter(sweep: Sweep, threads: int) -> Start:
    def start(planned: PlannedRun) -> Started:
        directory = _ready(sweep, planned)
        with open(directory / "train.log", "a") as log:
            # its own process group: a Ctrl-C meant for the sweep reaches the run once, as the
            # sweep's SIGTERM (and a run never outlives a sweep stopped by SIGTERM)
            proc = subprocess.Popen(train_command(directory, threads), stdout=log,
                                    stderr=subprocess.STDOUT, env=_environment(threads),
                                    start_new_session=True)
        return Started(proc.poll, proc.terminate)
    return start


def _job_starter(sweep: Sweep, executor, host: str, threads: int, gpus: int = 0,
                 queue: _SlurmQueue | None = None) -> Start:
    """Submit each run as a submitit job. A local job's train process adopts this process's
    claim (it descends from it); a SLURM job holds the claim as `slurm JOBID`, which its train
    process adopts. With a `queue` (SLURM) a job is over once squeue no longer lists it, else
    when submitit says so."""
    def start(planned: PlannedRun) -> Started:
        directory = _ready(sweep, planned)
        job = executor.submit(run_logged, train_command(directory, threads, gpus),
                              directory / "train.log", threads)
        if queue:
            queue.watch(job.job_id)

        def poll() -> int | None:
            returned = job.paths.result_pickle.exists()
            if not (returned or queue.over(job.job_id) if queue else job.done()):
                return None
            if not (returned or job.paths.result_pickle.exists()):
                return 1  # killed before it returned (time limit, scancel): count it as exit 1
            return 1 if job.exception() is not None else job.result()
        if host == "slurm":
            return Started(poll, detached=True, holder=f"slurm {job.job_id}")
        return Started(poll, lambda: job.cancel(check=False))
    return start


class _SlurmQueue:
    """Which of the submitted SLURM jobs squeue still lists, asked for all of them at once at
    most every SQUEUE_SECONDS. squeue needs no accounting; submitit's own check (sacct) does,
    and on a cluster without accounting it warns at every poll and never sees a job die."""

    def __init__(self):
        self.at, self.jobs, self.listed = float("-inf"), set(), None

    def watch(self, job_id: str) -> None:
        self.jobs.add(job_id)
        self.at = float("-inf")  # ask at the next poll

    def over(self, job_id: str) -> bool:
        if time.monotonic() - self.at > SQUEUE_SECONDS:
            self.at = time.monotonic()
            states = claim.slurm_queue(sorted(self.jobs))
            self.listed = None if states is None else set(states)  # None: squeue did not answer
            if self.listed is not None:
                self.jobs = set(self.listed)
        return self.listed is not None and job_id not in self.listed


def run_logged(command: list[str], log: Path, threads: int) -> int:
    """Run `command` with its output appended to `log`; its exit status (what a job returns).
    The signal submitit asks SLURM to send before a job's time limit (SIGUSR2) reaches the
    command as SIGTERM, on which a run checkpoints and stops; the next `sweep run` resumes it."""
    import submitit

    warning = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
    # SLURM signals every process of the job: the command ignores the warning itself
    previous = signal.signal(warning, signal.SIG_IGN)
    with open(log, "a") as file:
        process = subprocess.Popen(command, stdout=file, stderr=subprocess.STDOUT,
                                   env=_environment(threads))
    signal.signal(warning, lambda signum, frame: process.terminate())
    try:
        return process.wait()
    finally:
        signal.signal(warning, previous)


def _environment(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def _ready(sweep: Sweep, planned: PlannedRun) -> Path:
    """The run's folder (absolute: a job may start elsewhere), holding the run.json its
    command trains from."""
    from movelab.data.cache import write_json_atomically

    directory = sweep.run_dir(planned).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomically(directory / "run.json", {"config": planned.run.to_dict(),
                                                   "config_hash": planned.run_id}, indent=1)
    return directory


def consolidate(sweep: Sweep) -> Path:
    """results/<sweep>/runs.csv: one row per finished run of the sweep, sorted."""
    rows = []
    for planned in sweep.runs:
        path = sweep.run_dir(planned) / "result.json"
        if path.exists():
            result = _read_result(path)
            try:
                rows.append(csv_row(result, planned))
            except (KeyError, TypeError) as err:
                raise ConfigError(f"{path} lacks {err} of a result record; restore it, or delete "
                                  "it and rerun the run") from None
    rows.sort(key=lambda r: (r["depth"], VALUE_PATHS.index(r["value_path"]),
                             float(r["density"] or 0), r["slots"], r["variant"], r["seed"]))
    out = sweep.directory / "runs.csv"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RUNS_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(out, buffer.getvalue().encode())  # sweeps side by side never tear it
    return out


# what a run folder holds besides its record (.gitignore keeps them out of git): the weights,
# the resumable state, the claim and the log
NOT_RECORDED = (record.CHECKPOINT, record.MODEL, LOCK, "train.log")


def import_finished(sweep: Sweep, source: Path, log=print) -> list[str]:
    """Copy the record of every finished run of `sweep` found under the results folder
    `source` (e.g. a worktree's results/, or another machine's) into this sweep's runs/: each
    file of the run folder but NOT_RECORDED and hidden ones (partial writes), result.json last
    (it marks the run done), for runs that are not finished here; and the files a finished run
    here lacks (a diagnostics.json saved later) only when both result.json files are the same
    bytes (the same execution). A run being trained here (a live claim) is skipped, and so is a
    run finished in both places by different executions, each said through `log`. Nothing here
    is overwritten. Returns the run ids that gained files."""
    source_sweep = Path(source) / sweep.name / "runs"
    if not source_sweep.is_dir():
        raise ConfigError(f"{source_sweep} does not exist: --from takes a results folder that "
                          f"holds {sweep.name}/runs/")
    changed = []
    for planned in sweep.runs:
        origin, here = source_sweep / planned.run_id, sweep.run_dir(planned)
        if origin.resolve() == here.resolve() or not (origin / record.RESULT).exists():
            continue
        if (here / LOCK).exists() and claim.alive(claim.holder(here)):
            log(f"  skipped {planned.run_id}: it is being trained here ({here / LOCK})")
            continue
        if (here / record.RESULT).exists() and \
                (here / record.RESULT).read_bytes() != (origin / record.RESULT).read_bytes():
            log(f"  skipped {planned.run_id}: finished here and there by different executions "
                f"(their {record.RESULT} differ); nothing copied")
            continue
        files = sorted((f for f in origin.iterdir() if f.is_file() and not f.name.startswith(".")
                        and f.name not in NOT_RECORDED and not (here / f.name).exists()),
                       key=lambda f: (f.name == record.RESULT, f.name))
        for f in files:
            here.mkdir(parents=True, exist_ok=True)
            write_atomically(here / f.name, f.read_bytes())
        if files:
            changed.append(planned.run_id)
    return changed


def csv_row(result: dict, planned: PlannedRun) -> dict:
    model = result["config"]["model"]
    row = {k: result.get(k) for k in RUNS_CSV_COLUMNS if k in result}
    row.update(
        groups=";".join(planned.groups), role=planned.role, variant=planned.variant,
        n_heads=model["n_heads"], vocab_size=model["vocab_size"], seq_len=model["seq_len"],
        density=model["density"] if model["density"] is not None else "",
        **{f"params_{g}": result["params"][g] for g in PARAM_GROUPS},
        params_memory=result["params"]["lave_tables"] + result["params"]["move_bank"],
        train_flops_matmul=result["tokens_seen"] * result["flops_per_token_train_matmul"],
        corpus=result["data"]["corpus"], corpus_hash=result["data"]["content_hash"],
        # records from before the GPU path (2026-11-26) ran on the CPU, where precision is fp32
        precision=result.get("precision", "fp32"),
        recipe=";".join(f"{k}={v}" for part in ("model", "train")
                        for k, v in sorted(result["config"][part].items())
                        if k in RECIPE_KEYS))
    if "diagnostics" in result:
        row.update({k: v for k, v in diagnostics.curve_fields(result["diagnostics"]).items()
                    if k in RUNS_CSV_COLUMNS})
    return row


def _finished_results(sweep: Sweep) -> list[dict]:
    return [_read_result(path) for path in (sweep.run_dir(p) / record.RESULT for p in sweep.runs)
            if path.exists()]


def _flops_per_second(results: list[dict]) -> float | None:
    """Training FLOPs over training seconds, summed over finished runs (None without any):
    what one of the sweep's runs has achieved, shapes mixed."""
    flops = sum(result["train_flops"] for result in results)
    seconds = sum(result["wall_seconds"] for result in results)
    return flops / seconds if seconds > 0 else None


def _builds(results: list[dict]) -> dict[str, dict[str, int]]:
    """Per corpus, the runs of each of its builds (its documents' content hash: a corpus read
    from installed packages changes when they do) among `results`."""
    builds: dict[str, dict[str, int]] = {}
    for result in results:
        data = result.get("data", {})
        if "content_hash" in data:
            hashes = builds.setdefault(data["corpus"], {})
            hashes[data["content_hash"]] = hashes.get(data["content_hash"], 0) + 1
    return builds


def _counted(hashes: dict[str, int]) -> str:
    return ", ".join(f"{h} ({n} run{'s' * (n > 1)})"
                     for h, n in sorted(hashes.items(), key=lambda item: -item[1]))


def _mixed_builds(results: list[dict]) -> list[str]:
    """A line per corpus whose finished runs trained on more than one build of it."""
    return [f"  warning: the finished runs on {corpus} trained on {len(hashes)} builds of it "
            f"(data.content_hash {_counted(hashes)}): runs on different builds do not share "
            "batches at a seed"
            for corpus, hashes in _builds(results).items() if len(hashes) > 1]


def format_status(sweep: Sweep) -> str:
    """Every run with its status, after the counts per status and, per group (a sweep's
    stages), runs done of the group's and the training FLOPs still to run; a warning where the
    finished runs trained on more than one build of a corpus."""
    counts: dict[str, int] = {}
    groups: dict[str, list] = {}  # name: [done, runs, FLOPs of the runs not done]
    lines = [f"{sweep.name}: {sweep.description}".rstrip(": "), ""]
    for planned in sorted(sweep.runs, key=lambda p: p.cost):
        status = sweep.status(planned)
        counts[status] = counts.get(status, 0) + 1
        for name in planned.groups:
            group = groups.setdefault(name, [0, 0, 0.0])
            group[0], group[1] = group[0] + (status == "done"), group[1] + 1
            group[2] += 0.0 if status == "done" else planned.cost
        m, t = planned.run.model, planned.run.train
        lines.append(f"  {status:<8}{planned.run_id}  d{m.depth:<3}{planned.variant:<28}seed {t.seed}"
                     f"  {t.tokens / 1e6:6.2f}M tok  {planned.cost:9.3g} FLOPs  [{','.join(planned.groups)}]")
    order = dict.fromkeys(name for planned in sweep.runs for name in planned.groups)  # file order
    results = _finished_results(sweep)
    rate = _flops_per_second(results)
    hours = (lambda flops: f" (~{flops / rate / 3600:.1f} run-hours)") if rate else (lambda _: "")
    summary = ["  by group (runs done of the group's; training FLOPs left"
               + (f", in run-hours at the {rate:.3g} FLOP/s its finished runs averaged):"
                  if rate else "):")] + [
        f"    {name:<16}{groups[name][0]:>4} of {groups[name][1]:<4}"
        + (f"{groups[name][2]:9.3g} FLOPs left{hours(groups[name][2])}" if groups[name][2]
           else "  done")
        for name in order]
    lines[1:1] = ["  " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), *summary,
                  *_mixed_builds(results)]
    return "\n".join(lines)
