"""Data parallelism: `torchrun --nproc_per_node 2 -m movelab train` (gloo, two CPU processes)
trains the model one process trains with the same global batch, resumes a checkpoint, and
refuses a batch that does not split over the ranks.

Tolerance: every rank takes half of the same global batch and DDP averages the two half-batch
gradients, which equals the full-batch mean except for float summation order (and evaluation
adds per-rank sums). On this tiny AdamW run the final BPB of 1 and 2 processes differed by
2e-8 relative (4e-8 when 2 processes resume 1 process's checkpoint); 1e-5 leaves a wide margin for other thread counts and builds while a real slip
(a rank training on the wrong rows, half the validation windows, summed instead of averaged
gradients) moves it by far more. Muon's Newton-Schulz steps amplify rounding more (about 6e-5
on a similar run), so these tests use AdamW.
"""

import json
import subprocess
import sys

import pytest

from movelab.cli import main
from movelab.data import TokenData

TOLERANCE = 1e-5
TINY = ["--depth", "2", "--width", "32", "--heads", "1", "--vocab-size", "320", "--seq-len", "32",
        "--tokens", str(8 * 32 * 40), "--evals", "4", "--no-progress"]
BATCH = ["--batch-size", "8"]  # the global batch: 4 rows per rank


def torchrun(*args, cache) -> subprocess.CompletedProcess:
    """`movelab train` in two gloo processes; --standalone finds a free local port itself."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "movelab", "train", *args, "--threads", "1", "--cache-dir", str(cache)],
        capture_output=True, text=True, timeout=300)


def result(out) -> dict:
    return json.loads((out / "result.json").read_text())


@pytest.fixture
def single(corpus, cache, tmp_path):
    """The tiny run in one process (this also fills the data cache the ranks read)."""
    assert main(["train", *TINY, *BATCH, "--corpus", corpus, "--out", str(tmp_path / "single"),
                 "--cache-dir", str(cache)]) == 0
    return tmp_path / "single"


def test_two_processes_train_the_model_one_process_trains(corpus, cache, tmp_path, single):
    run = torchrun(*TINY, *BATCH, "--corpus", corpus, "--out", str(tmp_path / "two"), cache=cache)
    assert run.returncode == 0, run.stderr
    one, two = result(single), result(tmp_path / "two")
    assert two["config_hash"] == one["config_hash"]
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["tokens_seen"] == one["tokens_seen"] and two["steps"] == one["steps"]
    assert two["val_bpb"] == pytest.approx(one["val_bpb"], rel=TOLERANCE)
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=TOLERANCE)
    # rank 0 alone wrote the record: the same files, no checkpoint or temporary left
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        sorted(p.name for p in single.iterdir()) == ["curve.csv", "result.json", "run.json"]


def test_two_processes_resume_a_checkpoint(corpus, cache, tmp_path, single, monkeypatch):
    real_batch, calls = TokenData.train_batch, {"n": 0}

    def interrupting_batch(self, *args):
        calls["n"] += 1
        if calls["n"] == 23:  # between evaluations 2 and 3
            raise KeyboardInterrupt
        return real_batch(self, *args)

    monkeypatch.setattr(TokenData, "train_batch", interrupting_batch)
    stopped = tmp_path / "stopped"
    assert main(["train", *TINY, *BATCH, "--corpus", corpus, "--out", str(stopped),
                 "--cache-dir", str(cache)]) == 130  # interrupted, checkpointed at step 22
    assert (stopped / "checkpoint.pt").exists()
    run = torchrun("--from", str(stopped / "run.json"), "--out", str(stopped), "--resume",
                   "--no-progress", cache=cache)
    assert run.returncode == 0, run.stderr
    resumed = result(stopped)
    assert resumed["world_size"] == 2 and resumed["steps"] == result(single)["steps"]
    assert resumed["val_bpb"] == pytest.approx(result(single)["val_bpb"], rel=TOLERANCE)
    assert len((stopped / "curve.csv").read_text().splitlines()) == 1 + 4
    assert not (stopped / "checkpoint.pt").exists()


def test_a_batch_that_does_not_split_over_the_ranks_fails_clearly(corpus, cache, tmp_path):
    run = torchrun(*TINY, "--batch-size", "7", "--corpus", corpus, "--out", str(tmp_path),
                   cache=cache)
    assert run.returncode != 0
    assert "--batch-size 7 is the global batch and must split evenly over the 2 processes" \
        in run.stderr
    assert not (tmp_path / "run.json").exists()
