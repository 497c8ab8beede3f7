"""Sweeps on a real SLURM cluster: `scripts/slurm-up.sh` (`make slurm-up`, as root; CI does it)
starts a one-node one with a partition `cpu`. On it, `--executor slurm` trains every run once to
the subprocess executor's numbers; a job stopped by its time limit (SLURM's warning signal) or
by scancel leaves a checkpoint that the next `sweep run` finishes to the uninterrupted result;
`sweep status` tells queued jobs from running ones. Those tests skip, saying why, where no
cluster answers `sinfo`; the last one runs anywhere, on stand-ins. Each run is tiny; the
time-limit run is sized from the measured speed of this machine so that it needs longer than
SLURM's one-minute minimum."""

import csv
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from movelab import sweep as sweeps
from movelab.sweep import JobOptions, launch, load_sweep, run_sweep, starter
from test_sweep import TINY_MODEL, write_sweep
from test_sweep_executors import GRID

PARTITION = "cpu"
SLURM = ("--executor", "slurm", "--partition", PARTITION, "--gpus-per-job", "0")
# what differs between two runs of one config: the clock, and nothing else
CLOCK = {"wall_seconds", "tokens_per_second", "started_at", "ended_at"}
WAIT = 600  # seconds; a bound on waits that normally take seconds (the test fails past it)


def cluster() -> tuple[int | None, str]:
    """(the CPUs of the node of partition `cpu`, "") or (None, why there is no cluster)."""
    how = "start one with `make slurm-up` (scripts/slurm-up.sh, as root)"
    if not shutil.which("sinfo"):
        return None, f"no SLURM here (no sinfo); {how}"
    try:
        out = subprocess.run(["sinfo", "--noheader", f"--partition={PARTITION}",
                              "--format=%t %c"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None, f"sinfo did not answer within 30 s; {how}"
    states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    up = [int(cpus) for state, cpus in states.items() if state in ("idle", "mix")]
    if out.returncode or not up:
        return None, (f"no SLURM partition {PARTITION!r} with an idle node (sinfo: "
                      f"{(out.stdout + out.stderr).strip() or 'nothing'}); {how}")
    return up[0], ""


CPUS, WHY = cluster()
on_a_cluster = pytest.mark.skipif(CPUS is None, reason=WHY)


def movelab(*args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "movelab", *args], capture_output=True,
                          text=True, timeout=WAIT)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def write(root, corpus, body, budget) -> str:
    """results folder `root` with the sweep `tiny`; returns `root` for --results-dir."""
    write_sweep(root, corpus, body, budget, evals=4)
    return str(root)


def rows(results) -> list[dict]:
    with open(f"{results}/tiny/runs.csv") as file:
        return [{k: v for k, v in row.items() if k not in CLOCK} for row in csv.DictReader(file)]


def checkpoint_step(run_dir) -> int:
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return json.loads(saved["loop_state"])["step"]


def slurm_state(job: str) -> str:
    return subprocess.run(["squeue", "--noheader", "--format=%T", f"--jobs={job}"],
                          capture_output=True, text=True, timeout=60).stdout.strip()


def wait_for(condition, what: str):
    deadline = time.time() + WAIT
    while not condition():
        assert time.time() < deadline, f"waited {WAIT} s for {what}"
        time.sleep(0.5)




@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    """The tiny grid through the subprocess executor: rows to match, and this machine's speed
    (tokens per second of one run on one thread) to size longer runs by."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOVELAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        results = write(tmp_path_factory.mktemp("reference"), corpus, GRID,
                        "tokens_per_param = 0.2")
        sweep = load_sweep("tiny", results)
        assert run_sweep(sweep, jobs=2, log=lambda message: None) == 0
        speed = min(json.loads((sweep.run_dir(p) / "result.json").read_text())[
            "tokens_per_second"] for p in sweep.runs)
        yield results, speed


@pytest.fixture
def env(cache, monkeypatch):
    """The jobs inherit the environment of `sweep run` (SLURM's default), the cache included."""
    monkeypatch.setenv("MOVELAB_CACHE", str(cache))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def long_run(speed: float, seconds: float) -> tuple[str, str]:
    """A sweep body (one run) and budget: the run needs about `seconds` at `speed` tokens per
    second."""
    batch = 4 * 32
    tokens = max(1, round(speed * seconds / batch)) * batch
    return f"""
[[group]]
name = "long"
depths = [2]
variants = ["standard"]
{TINY_MODEL}
""", f"tokens = {tokens}"


@on_a_cluster
def test_slurm_jobs_train_each_run_once_to_the_subprocess_numbers(tmp_path, corpus, env,
                                                                  reference):
    results = write(tmp_path, corpus, GRID, "tokens_per_param = 0.2")
    run = movelab("sweep", "run", "tiny", "--results-dir", results, *SLURM,
                  "--cpus-per-job", "1", "--time-limit", "5")
    lines = (run.stdout + run.stderr).splitlines()
    assert sum(line.startswith("  start ") for line in lines) == 2
    assert sum(line.startswith("  done ") for line in lines) == 2
    # besides the plan (first line), the sweep's header, the starts and the ends, nothing: no
    # warnings (submitit would poll sacct, which a cluster without accounting cannot answer;
    # squeue tells when a job ends)
    assert lines[1].startswith("tiny: 2 runs to train")
    assert [line for line in lines[2:] if not line.startswith(("  start ", "  done "))] == []
    sweep = load_sweep("tiny", results)
    assert len(list((sweep.directory / "submitit").glob("*/*_submission.sh"))) == 2
    movelab("sweep", "collect", "tiny", "--results-dir", results)
    assert rows(results) == rows(reference[0])


@on_a_cluster
def test_a_job_stopped_by_its_time_limit_resumes_to_the_uninterrupted_result(
        tmp_path, corpus, env, reference):
    # the run needs about 75 s; SLURM warns a one-minute job 15 s before its end (give or take
    # its 30 s between checks), so the warning comes while it trains
    body, budget = long_run(reference[1], 75)
    straight = write(tmp_path / "straight", corpus, body, budget)
    stopped = write(tmp_path / "stopped", corpus, body, budget)
    sweep = load_sweep("tiny", stopped)
    (planned,) = sweep.runs
    uninterrupted = subprocess.Popen(  # meanwhile, on the other core
        [sys.executable, "-m", "movelab", "sweep", "run", "tiny", "--results-dir", straight],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = movelab("sweep", "run", "tiny", "--results-dir", stopped, *SLURM,
                        "--cpus-per-job", "1", "--time-limit", "1", check=False)
        out = first.stdout + first.stderr
        assert first.returncode == 2 and f"  stopped {planned.run_id}" in out, out
        assert "resumes its checkpoint" in out
        assert sweep.status(planned) == "stopped"
        total = planned.run.train.total_steps(planned.run.model)
        assert 0 < checkpoint_step(sweep.run_dir(planned)) < total
        assert "stopped at step" in (sweep.run_dir(planned) / "train.log").read_text()

        movelab("sweep", "run", "tiny", "--results-dir", stopped, *SLURM,
                "--cpus-per-job", "1", "--time-limit", "10")
        assert sweep.status(planned) == "done"
        assert uninterrupted.wait(timeout=WAIT) == 0
    finally:
        uninterrupted.kill()
    assert rows(stopped) == rows(straight)
    curves = [(load_sweep("tiny", r).run_dir(planned) / "curve.csv").read_text()
              for r in (stopped, straight)]
    assert curves[0] == curves[1]


@on_a_cluster
def test_status_shows_queued_and_running_jobs_and_scancel_leaves_a_resumable_run(
        tmp_path, corpus, env, reference):
    # two sweeps of the same run behind another user's job that fills the node: both queue,
    # then train side by side; the first is cancelled, the second is its uninterrupted twin
    body, budget = long_run(reference[1], 20)
    results = [write(tmp_path / name, corpus, body, budget) for name in ("a", "b")]
    sweeps = [load_sweep("tiny", r) for r in results]
    (planned,) = sweeps[0].runs
    run_dir = sweeps[0].run_dir(planned)
    command = ["sweep", "run", "tiny", *SLURM, "--cpus-per-job", "1", "--time-limit", "10"]
    blocker = subprocess.run(
        ["sbatch", "--parsable", f"--partition={PARTITION}", f"--cpus-per-task={CPUS}",
         "--time=10", "--output=/dev/null", "--wrap=sleep 600"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip().split(";")[0]
    runners = []
    try:
        wait_for(lambda: slurm_state(blocker) == "RUNNING", "the job that fills the node")
        runners = [subprocess.Popen([sys.executable, "-m", "movelab", *command, "--results-dir",
                                     r], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for r in results]
        wait_for(lambda: [s.status(planned) for s in sweeps] == ["queued"] * 2, "both queued")
        status = movelab("sweep", "status", "tiny", "--results-dir", results[0]).stdout
        assert f"  queued  {planned.run_id}" in status and "1 queued" in status, status
        subprocess.run(["scancel", blocker], check=True, timeout=60)
        wait_for(lambda: sweeps[0].status(planned) == "running", "the job to start")
        status = movelab("sweep", "status", "tiny", "--results-dir", results[0]).stdout
        assert f"  running {planned.run_id}" in status and "1 running" in status, status
        wait_for(lambda: (run_dir / "checkpoint.pt").exists(), "the first evaluation")
        job = (run_dir / ".lock").read_text().split()[1]
        subprocess.run(["scancel", job], check=True, timeout=60)
        outs = [runner.communicate(timeout=WAIT)[0] for runner in runners]
    finally:
        subprocess.run(["scancel", blocker], timeout=60)
        for runner in runners:
            runner.kill()
    assert runners[0].returncode == 2 and f"  stopped {planned.run_id}" in outs[0], outs[0]
    assert runners[1].returncode == 0, outs[1]
    assert sweeps[0].status(planned) == "stopped"
    assert "stopped at step" in (run_dir / "train.log").read_text()

    movelab(*command, "--results-dir", results[0])
    assert sweeps[0].status(planned) == "done"
    assert rows(results[0]) == rows(results[1])
    curves = [(s.run_dir(planned) / "curve.csv").read_text() for s in sweeps]
    assert curves[0] == curves[1]


def test_a_job_is_over_when_squeue_stops_listing_it_and_sacct_is_never_asked(
        tmp_path, corpus, monkeypatch):
    """No cluster needed: stand-ins answer like SLURM's srun, sbatch and squeue; sacct, as on a
    cluster without accounting, fails (and notes that it was asked)."""
    bin_dir, queue = tmp_path / "bin", tmp_path / "queue"
    bin_dir.mkdir()
    for name, body in (("srun", "exit 0"), ("sbatch", "echo 'Submitted batch job 77'"),
                       ("squeue", f"cat {queue}"),
                       ("sacct", f"touch {tmp_path}/sacct; echo 'Slurm accounting storage is "
                                 "disabled' >&2; exit 1")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(sweeps, "SQUEUE_SECONDS", 0.0)
    sweep = load_sweep("tiny", write(tmp_path / "results", corpus, GRID, "tokens_per_param = 0.2"))
    planned = sweep.runs[0]
    start, _ = starter(sweep, "slurm", 1, JobOptions(gpus_per_job=0, cpus_per_job=1))
    queue.write_text("77|PENDING\n")
    poll = launch(sweep, planned, start, log=lambda message: None)[1].poll  # claim, submit
    assert poll() is None and sweep.status(planned) == "queued"
    queue.write_text("77|RUNNING\n")
    assert poll() is None and sweep.status(planned) == "running"
    queue.write_text("")  # gone without a result: killed (time limit, scancel, node failure)
    assert poll() == 1 and sweep.status(planned) == "missing"
    # its claim (`slurm 77`, left by a sweep that was not there to see the job end) is stale:
    # the next sweep takes the run over
    assert launch(sweep, planned, start, log=lambda message: None) is not None
    assert not (tmp_path / "sacct").exists()
