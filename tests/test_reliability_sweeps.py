"""Sweeps that nothing breaks (docs/guarantees.md): sweep.toml is read strictly, two runners
side by side train each run once, a stopped sweep stops its runs at a checkpoint, and bad input
ends in one line with every file as it was."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from movelab.cli import main
from movelab.sweep import load_sweep
from movelab.training import claim
from test_reliability import fails_cleanly

GROUP = """
[[group]]
name = "grid"
depths = [2]
variants = ["standard", "move x2", "lave x1"]
model = {width = 32, heads = 1, vocab_size = 320, seq_len = 32}
"""


def write(root, corpus, body=GROUP, train='batch_size = 4\nevals = 2', budget="tokens = 2560"):
    folder = root / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.toml").write_text(f'description = "test"\n[train]\ncorpus = "{corpus}"\n'
                                       f'{train}\n[budget]\n{budget}\n{body}')
    return folder


@pytest.mark.parametrize("change,message", [
    (dict(train="learning_rate = 0.1"), "[train]: unknown key 'learning_rate'"),
    (dict(train="seed = 3"), "unknown key 'seed'"),
    (dict(train="lr = -1"), "--lr must be a finite number above 0, got -1"),
    (dict(budget="tokens = 0"), "[budget] tokens must be a whole number at least 1, got 0"),
    (dict(budget="tokens = -100"), "[budget] tokens must be a whole number at least 1"),
    (dict(budget="tokens_per_param = inf"), "tokens_per_param must be a finite number above 0"),
    (dict(body=GROUP.replace("[[group]]", "[[groups]]")),
     "unknown key 'groups' (did you mean 'group'?)"),
    (dict(body=GROUP.replace("depths = [2]", "depths = [2]\nseed = [3]")),
     "group 1: unknown key 'seed' (did you mean 'seeds'?)"),
    (dict(body=GROUP.replace("depths = [2]\n", "")), "group 'grid' needs depths = [...]"),
    (dict(body=GROUP.replace('name = "grid"\n', "")), "group 1 needs a name"),
    (dict(body=GROUP.replace("depths = [2]", "depths = [2.5]")), "each of depths must be a whole"),
    (dict(body=GROUP.replace('"lave x1"]', '{label = "w", value_path = "standard", widht = 64}]')),
     "a variant table: unknown key 'widht' (did you mean 'width'?)"),
    (dict(body=GROUP.replace("width = 32", "widht = 32")),
     "model: unknown key 'widht' (did you mean 'width'?)"),
    (dict(body=GROUP.replace('"lave x1"', '"lave x3"')), "LaVE density must be 1"),
])
def test_sweep_toml_is_read_strictly(tmp_path, corpus, capsys, change, message):
    write(tmp_path, corpus, **change)
    err = fails_cleanly(capsys, ["sweep", "status", "tiny", "--results-dir", str(tmp_path)],
                        message, tmp_path)
    if "unknown key" in message:
        assert "allowed:" in err


@pytest.mark.parametrize("jobs", ["-1", "0", "two"])
def test_jobs_must_be_a_positive_count(tmp_path, corpus, capsys, jobs):
    write(tmp_path, corpus)
    fails_cleanly(capsys, ["sweep", "run", "tiny", "--results-dir", str(tmp_path), "--jobs", jobs],
                  "--jobs: must be a whole number of at least 1", tmp_path)


def test_collect_over_a_damaged_result_fails_in_one_line(tmp_path, corpus, capsys):
    folder = write(tmp_path, corpus)
    run_id = load_sweep("tiny", tmp_path).runs[0].run_id
    (folder / "runs" / run_id).mkdir(parents=True)
    (folder / "runs" / run_id / "result.json").write_text('{"config": {"model": {"dep')
    fails_cleanly(capsys, ["sweep", "collect", "tiny", "--results-dir", str(tmp_path)],
                  "is not a readable result record", tmp_path)


def sweep_command(root, *extra):
    return [sys.executable, "-m", "movelab", "sweep", "run", "tiny", "--results-dir", str(root),
            "--threads-per-job", "1", *extra]


def test_two_runners_side_by_side_train_each_run_once(tmp_path, corpus, cache):
    folder = write(tmp_path, corpus)
    env = {**os.environ, "MOVELAB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    runners = [subprocess.Popen(sweep_command(tmp_path, "--jobs", "1"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [runner.communicate(timeout=600) for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0], outputs
    sweep = load_sweep("tiny", tmp_path)
    starts = [line.split()[1] for out, _ in outputs for line in out.splitlines()
              if line.startswith("  start ")]
    assert sorted(starts) == sorted(p.run_id for p in sweep.runs)  # each started once
    for planned in sweep.runs:
        log = (sweep.run_dir(planned) / "train.log").read_text()
        assert log.count("starting at step 0") == 1 and log.count("record in") == 1, log
        assert not (sweep.run_dir(planned) / ".lock").exists()
    with open(folder / "runs.csv") as file:
        assert len(list(csv.DictReader(file))) == 3


def test_sigterm_stops_the_sweeps_runs_at_a_checkpoint_and_consolidates(tmp_path, corpus,
                                                                        cache):
    folder = write(tmp_path, corpus, train="batch_size = 4\nevals = 2000",
                   body=GROUP.replace('"standard", "move x2", "lave x1"', '"standard"'),
                   budget="tokens = 25600000")
    env = {**os.environ, "MOVELAB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(sweep_command(tmp_path), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    run_dir = load_sweep("tiny", tmp_path).run_dir(load_sweep("tiny", tmp_path).runs[0])
    deadline = time.time() + 300
    while time.time() < deadline and parent.poll() is None and not (
            (run_dir / "checkpoint.pt").exists()
            and claim.holder(run_dir) not in (None, claim.me(parent.pid))):
        time.sleep(0.2)
    child = claim.holder(run_dir)  # the train process, which adopted the sweep's claim
    assert child and claim.alive(child)
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=300)
    assert parent.returncode == 130 and "Traceback" not in err
    assert "sweep tiny stopped; 1 run(s) were stopped at a checkpoint" in err
    assert not claim.alive(child)  # not orphaned
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / ".lock").exists()
    assert (folder / "runs.csv").exists()
    assert "--resume" in (run_dir / "train.log").read_text()
    sweep = load_sweep("tiny", tmp_path)
    assert sweep.status(sweep.runs[0]) == "stopped"
