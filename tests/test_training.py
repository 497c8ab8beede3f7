"""Training runs end to end on a small synthetic corpus: loss falls, runs are deterministic,
resume equals an uninterrupted run, and bad runs stop with clear messages."""

import json
import math

import pytest

from movelab.cli import main
from movelab.config import build_config
from movelab.data import DataError, TokenData
from movelab.training import loop
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.loop import Interrupted, RunError, train


def tiny_run(corpus, value_path="standard", seed=0, **train_kw):
    model = build_config(depth=2, width=32, heads=1, vocab_size=320, seq_len=32,
                         value_path=value_path, density=2 if value_path != "standard" else None)
    return RunConfig(model, TrainConfig(corpus=corpus, tokens=train_kw.pop("tokens", 8 * 32 * 40),
                                        batch_size=8, evals=4, seed=seed, **train_kw))


@pytest.mark.parametrize("value_path", ["standard", "lave", "move"])
def test_tiny_run_learns_and_writes_its_record(corpus, cache, tmp_path, value_path):
    result = train(tiny_run(corpus, value_path), tmp_path, cache_dir=cache, progress=False)
    curve = (tmp_path / "curve.csv").read_text().splitlines()
    assert len(curve) == 1 + 4 and curve[0].startswith("step,tokens,flops")
    first_bpb = float(curve[1].split(",")[-1])
    # a uniform guess over 320 tokens costs log2(320) bits per token; learning beats it by far
    uniform_bpb = math.log2(320) / (result["data"]["train_bytes"] / result["data"]["train_tokens"])
    assert result["val_bpb"] < first_bpb < uniform_bpb
    assert result["val_bpb"] < 0.6 * uniform_bpb
    recorded = json.loads((tmp_path / "result.json").read_text())
    for key in ("config", "config_hash", "value_path", "params", "params_total", "params_active",
                "flops_per_token_train", "tokens_seen", "train_flops", "val_bpb", "val_bpb_best",
                "val_loss", "wall_seconds", "tokens_per_second", "git_commit", "git_dirty",
                "torch_version", "device", "seed", "started_at", "ended_at"):
        assert key in recorded
    assert recorded["tokens_seen"] == 40 * 8 * 32
    assert recorded["train_flops"] == recorded["tokens_seen"] * recorded["flops_per_token_train"]
    assert not (tmp_path / "checkpoint.pt").exists()


def test_same_config_and_seed_give_the_same_bpb_and_from_reruns_it(corpus, cache, tmp_path):
    a = train(tiny_run(corpus, "move"), tmp_path / "a", cache_dir=cache, progress=False)
    b = train(tiny_run(corpus, "move"), tmp_path / "b", cache_dir=cache, progress=False)
    assert a["val_bpb"] == b["val_bpb"]
    c = train(tiny_run(corpus, "move", seed=1), tmp_path / "c", cache_dir=cache, progress=False)
    assert c["val_bpb"] != a["val_bpb"]
    assert main(["train", "--from", str(tmp_path / "a" / "result.json"), "--out",
                 str(tmp_path / "rerun"), "--no-progress", "--cache-dir", str(cache)]) == 0
    rerun = json.loads((tmp_path / "rerun" / "result.json").read_text())
    assert rerun["val_bpb"] == a["val_bpb"] and rerun["config_hash"] == a["config_hash"]


def test_resume_after_interrupt_equals_uninterrupted(corpus, cache, tmp_path, interrupt_at_batch):
    run = tiny_run(corpus, "move", optimizer="muon")
    straight = train(run, tmp_path / "straight", cache_dir=cache, progress=False)

    # batch 23 is between evaluations, so resuming must replay no step twice
    with interrupt_at_batch(TokenData, 23):
        with pytest.raises(Interrupted, match="--resume"):
            train(run, tmp_path / "stopped", cache_dir=cache, progress=False)
        assert (tmp_path / "stopped" / "checkpoint.pt").exists()
        with pytest.raises(RunError, match="--resume"):
            train(run, tmp_path / "stopped", cache_dir=cache, progress=False)
    resumed = train(run, tmp_path / "stopped", resume=True, cache_dir=cache, progress=False)
    assert resumed["val_bpb"] == straight["val_bpb"]
    assert (tmp_path / "stopped" / "curve.csv").read_text() == \
        (tmp_path / "straight" / "curve.csv").read_text()


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(
        corpus, cache, tmp_path, monkeypatch):
    real_forward, calls = loop.GPT.forward, {"n": 0}

    def poisoned(self, *args, **kw):
        out = real_forward(self, *args, **kw)
        if self.training:
            calls["n"] += 1
            if calls["n"] >= 25:
                return out * float("nan")
        return out

    monkeypatch.setattr(loop.GPT, "forward", poisoned)
    with pytest.raises(RunError, match=r"loss became nan at step 25.*step 20"):
        train(tiny_run(corpus), tmp_path, cache_dir=cache, progress=False)
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "result.json").exists()


def test_finished_run_is_not_overwritten_without_force(corpus, cache, tmp_path, capsys):
    argv = ["train", "--depth", "2", "--width", "32", "--heads", "1", "--vocab-size", "320",
            "--seq-len", "32", "--batch-size", "4", "--tokens", "256", "--evals", "1",
            "--corpus", corpus, "--out", str(tmp_path), "--cache-dir", str(cache), "--no-progress"]
    assert main(argv) == 0
    before = (tmp_path / "result.json").read_text()
    capsys.readouterr()
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "result.json").read_text() == before
    assert main(argv + ["--force"]) == 0


def test_impossible_data_configs_fail_before_training(corpus, cache, tmp_path, capsys):
    too_long = RunConfig(build_config(depth=2, width=32, heads=1, vocab_size=320, seq_len=4096),
                         TrainConfig(corpus=corpus, tokens=4096))
    with pytest.raises(DataError, match="longer than the validation split"):
        train(too_long, tmp_path / "a", cache_dir=cache, progress=False)
    assert not (tmp_path / "a" / "checkpoint.pt").exists()
    assert main(["train", "--corpus", str(tmp_path / "nope"), "--depth", "2", "--out",
                 str(tmp_path / "b"), "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["train", "--from", str(tmp_path / "missing.json"), "--depth", "2"]) == 2
    assert "--from reruns" in capsys.readouterr().err


def test_sigterm_checkpoints_the_last_step_and_says_how_to_resume(corpus, cache, tmp_path):
    """A sweep being stopped or SLURM's time limit sends SIGTERM: the run ends like Ctrl-C."""
    import signal
    import subprocess
    import sys
    import time

    import torch

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "movelab", "train", "--depth", "2", "--width", "32", "--heads", "1",
         "--vocab-size", "320", "--seq-len", "32", "--batch-size", "4", "--tokens", str(4 * 32 * 5000),
         "--evals", "100", "--corpus", corpus, "--cache-dir", str(cache), "--out", str(out),
         "--threads", "1", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert json.loads(saved["loop_state"])["step"] >= 50
    assert not (out / "result.json").exists()
