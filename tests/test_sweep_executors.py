"""Sweeps through submitit: a real tiny sweep as local jobs, and the SLURM job a run becomes
(submitted to a stand-in sbatch, since there is no cluster here)."""

import csv
import os
import sys

import submitit

from movelab.sweep import JobOptions, launch, run_sweep, starter
from test_sweep import TINY_MODEL, write_sweep

GRID = f"""
[[group]]
name = "grid"
depths = [2]
variants = ["standard", "move x2"]
{TINY_MODEL}
"""


def test_local_jobs_train_what_is_missing_and_consolidate(tmp_path, corpus, cache, monkeypatch):
    monkeypatch.setenv("MOVELAB_CACHE", str(cache))
    sweep = write_sweep(tmp_path, corpus, GRID)
    messages = []
    assert run_sweep(sweep, jobs=2, executor="local", log=messages.append) == 0
    assert "as submitit jobs on this machine" in messages[0]
    assert {sweep.status(p) for p in sweep.runs} == {"done"}
    with open(sweep.directory / "runs.csv") as file:
        assert {r["value_path"] for r in csv.DictReader(file)} == {"standard", "move"}
    for planned in sweep.runs:
        assert "val_bpb" in (sweep.run_dir(planned) / "train.log").read_text()
        assert not (sweep.run_dir(planned) / ".lock").exists()
    assert len(list((sweep.directory / "submitit").glob("*/*_log.out"))) == 2  # one per job
    messages.clear()
    run_sweep(sweep, executor="local", log=messages.append)
    assert messages[0].startswith("tiny: 0 runs to train (2 done)")


def test_a_slurm_job_asks_for_the_options_and_runs_the_train_command(tmp_path, corpus,
                                                                      monkeypatch):
    bin_dir = tmp_path / "bin"  # submitit needs srun to exist; sbatch and squeue answer like SLURM's
    bin_dir.mkdir()
    for name, body in (("srun", "exit 0"), ("sbatch", "echo 'Submitted batch job 4242'"),
                       ("squeue", "echo '4242|PENDING'")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sweep = write_sweep(tmp_path / "results", corpus, GRID)
    planned = sweep.runs[0]
    options = JobOptions(partition="gpu", gpus_per_job=8, cpus_per_job=64, time_limit=90)

    start, how = starter(sweep, "slurm", 1, options)
    launch(sweep, planned, start, log=lambda message: None)  # claims the run, then submits it
    assert how == "as SLURM jobs of 8 GPU(s), 64 CPUs, 90 min on partition gpu"
    assert sweep.status(planned) == "queued"  # the lock names the job, which squeue lists
    assert (sweep.run_dir(planned) / ".lock").read_text() == "slurm 4242"
    job_dir = sweep.directory / "submitit" / "4242"
    sbatch = (job_dir / "4242_submission.sh").read_text()
    for line in ("--partition=gpu", "--gpus-per-node=8", "--cpus-per-task=64", "--time=90",
                 "--signal=USR2@90",  # 90 s before the end of a 90-minute job
                 "--nodes=1", "--ntasks-per-node=1", "--job-name=movelab-tiny"):
        assert f"#SBATCH {line}\n" in sbatch
    submitted = submitit.SlurmJob(sweep.directory / "submitit" / "%j", "4242").submission()
    command, log, threads = submitted.args
    run_dir = sweep.run_dir(planned).resolve()
    assert command == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node=8", "-m", "movelab", "train",
                       "--from", str(run_dir / "run.json"), "--out", str(run_dir), "--resume",
                       "--threads", "8", "--no-progress"]
    assert log == run_dir / "train.log" and threads == 8


def test_a_failing_local_job_counts_as_a_failure(tmp_path, corpus, cache, monkeypatch):
    monkeypatch.setenv("MOVELAB_CACHE", str(cache))
    sweep = write_sweep(tmp_path, corpus, """
[[group]]
name = "too long"
depths = [2]
variants = ["standard"]
model = {width = 32, heads = 1, vocab_size = 320, seq_len = 4096}
""")
    messages = []
    assert run_sweep(sweep, executor="local", log=messages.append) == 1
    assert any(m.startswith("  FAILED") and "(exit 2)" in m and "submitit" in m for m in messages)
    assert "longer than the validation split" in \
        (sweep.run_dir(sweep.runs[0]) / "train.log").read_text()
    assert sweep.status(sweep.runs[0]) == "missing"
