"""Nothing lost, nothing wrong (docs/guarantees.md): interrupts at any state of the loop resume
to exactly the uninterrupted run, and every kind of bad input ends with one line, exit status
2, and every file as it was."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from movelab.cli import main
from movelab.config import build_config
from movelab.data import TokenData
from movelab.data import task as text_task
from movelab.training import claim, loop, record
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.loop import Interrupted, RunError, train

STEPS = 16  # evaluations at steps 4, 8, 12 and 16
TIMING = ("wall_seconds", "tokens_per_second", "started_at", "ended_at")


def tiny(corpus, evals=4, **train_kw):
    model = build_config(depth=1, width=64, heads=2, vocab_size=320, seq_len=32)
    return RunConfig(model, TrainConfig(corpus=corpus, tokens=4 * 32 * STEPS, batch_size=4,
                                        evals=evals, **train_kw))


def tiny_argv(corpus, cache, out, *extra):
    return ["train", "--depth", "1", "--width", "64", "--heads", "2", "--vocab-size", "320",
            "--seq-len", "32", "--batch-size", "4", "--tokens", str(4 * 32 * STEPS), "--evals",
            "4", "--corpus", corpus, "--cache-dir", str(cache), "--out", str(out), "--threads",
            "1", "--no-progress", *extra]


def files(folder: Path) -> dict:
    """Every file under `folder` and its bytes (what 'nothing changed' compares)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same run: curve.csv byte for byte, result.json but timing."""
    assert (a / "curve.csv").read_text() == (b / "curve.csv").read_text()
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a, b))
    assert {k: v for k, v in ra.items() if k not in TIMING} == \
        {k: v for k, v in rb.items() if k not in TIMING}


@pytest.fixture
def straight(corpus, cache, tmp_path, one_thread):
    """The uninterrupted reference run of `tiny`."""
    def run(evals=4, **kw):
        out = tmp_path / f"straight-{evals}"
        if not (out / "result.json").exists():
            train(tiny(corpus, evals, **kw), out, cache_dir=cache, progress=False)
        return out
    return run


def interrupt_nth(monkeypatch, owner, name, n, *, after=False):
    """Make the n-th call of owner.name raise KeyboardInterrupt (before it runs, or after)."""
    real, calls = getattr(owner, name), {"n": 0}

    def wrapped(*args, **kw):
        calls["n"] += 1
        if calls["n"] == n and not after:
            raise KeyboardInterrupt
        out = real(*args, **kw)
        if calls["n"] == n:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(owner, name, wrapped)
    return lambda: monkeypatch.setattr(owner, name, real)


# ------------------------------------------------------------------ the loop's state machine

@pytest.mark.parametrize("evals,nth", [(4, 4), (4, 2), (1, 1)],
                         ids=["final-validation", "mid-run-validation", "evals-1"])
def test_an_interrupt_inside_validation_resumes_to_the_uninterrupted_run(
        corpus, cache, tmp_path, monkeypatch, straight, evals, nth):
    """The step and its evaluation are one transition: stopped in the validation pass, the run
    resumes into it (no final row taken from an older pass, no IndexError with --evals 1, no
    lost rows, train_loss averaged over the right steps)."""
    reference = straight(evals)
    restore = interrupt_nth(monkeypatch, loop, "evaluate", nth)
    out = tmp_path / "stopped"
    with pytest.raises(Interrupted, match="--resume"):
        train(tiny(corpus, evals), out, cache_dir=cache, progress=False)
    restore()
    saved = record.load_checkpoint(out)["loop_state"]
    assert saved["step"] == STEPS * nth // evals and len(saved["curve"]) == nth - 1
    train(tiny(corpus, evals), out, resume=True, cache_dir=cache, progress=False)
    same_run(out, reference)
    assert len((out / "curve.csv").read_text().splitlines()) == 1 + evals


def test_an_interrupt_after_a_batch_is_drawn_keeps_the_generator_state_before_it(
        corpus, cache, tmp_path, monkeypatch, straight):
    reference = straight()
    restore = interrupt_nth(monkeypatch, TokenData, "train_batch", 7, after=True)
    out = tmp_path / "stopped"
    with pytest.raises(Interrupted):
        train(tiny(corpus), out, cache_dir=cache, progress=False)
    restore()
    assert record.load_checkpoint(out)["loop_state"]["step"] == 6
    train(tiny(corpus), out, resume=True, cache_dir=cache, progress=False)
    same_run(out, reference)


def test_signals_inside_an_update_wait_for_its_end(corpus, cache, tmp_path, monkeypatch,
                                                   straight):
    """SIGTERM in the middle of an optimizer update is held until the step is counted."""
    import signal

    reference = straight()
    real_step, calls = torch.optim.AdamW.step, {"n": 0}

    def step(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives at once; handled mid-update
        return real_step(self, *args, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    out = tmp_path / "stopped"
    with pytest.raises(Interrupted, match="stopped at step 5 of 16"):
        train(tiny(corpus), out, cache_dir=cache, progress=False)
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    train(tiny(corpus), out, resume=True, cache_dir=cache, progress=False)
    same_run(out, reference)


def test_resume_cleans_partial_files_and_says_when_there_is_nothing_to_resume(
        corpus, cache, tmp_path, monkeypatch, capsys, straight):
    reference = straight()
    out = tmp_path / "run"
    assert main(tiny_argv(corpus, cache, out, "--resume")) == 0
    err = capsys.readouterr().err
    assert f"no checkpoint.pt in {out} to resume; starting at step 0" in err
    same_run(out, reference)
    restore = interrupt_nth(monkeypatch, TokenData, "train_batch", 10)
    assert main(tiny_argv(corpus, cache, tmp_path / "again")) == 130
    restore()
    stale = tmp_path / "again" / ".checkpoint.pt.partial-x1y2"  # what a SIGKILL mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    assert main(tiny_argv(corpus, cache, tmp_path / "again", "--resume")) == 0
    assert not stale.exists()
    same_run(tmp_path / "again", reference)


def test_every_interrupt_exits_130_and_says_how_to_go_on(corpus, cache, tmp_path, monkeypatch,
                                                         capsys):
    def stop(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(text_task, "prepare_text_data", stop)
    assert main(tiny_argv(corpus, cache, tmp_path / "a")) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "preparing the data" in err and err.count("\n") == 1
    assert not (tmp_path / "a").exists()  # stopped before anything was written
    monkeypatch.undo()
    restore = interrupt_nth(monkeypatch, TokenData, "train_batch", 3)
    assert main(tiny_argv(corpus, cache, tmp_path / "b")) == 130
    restore()
    err = capsys.readouterr().err
    assert "stopped at step 2 of 16" in err and "--resume" in err and err.count("\n") == 1


def test_the_nan_guard_names_the_checkpoint_for_what_it_is(corpus, cache, tmp_path,
                                                           monkeypatch):
    real_forward, calls = loop.GPT.forward, {"n": 0}

    def poisoned(self, *args, **kw):
        out = real_forward(self, *args, **kw)
        if self.training:
            calls["n"] += 1
            if calls["n"] >= 10:
                return out * float("nan")
        return out

    monkeypatch.setattr(loop.GPT, "forward", poisoned)
    with pytest.raises(RunError) as stopped:
        train(tiny(corpus), tmp_path, cache_dir=cache, progress=False)
    message = str(stopped.value)
    assert "loss became nan at step 10" in message and "good" not in message
    assert "(step 8, finite weights) is kept" in message
    saved = record.load_checkpoint(tmp_path)
    assert saved["loop_state"]["step"] == 8
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


# ------------------------------------------------------------------ bad input: one line, exit 2

def fails_cleanly(capsys, argv, message, *watched: Path):
    before = [files(p) for p in watched]
    try:
        status = main(argv)
    except SystemExit as parse_error:  # argparse's own checks
        status = parse_error.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert [files(p) for p in watched] == before
    return err


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "--seed must be a whole number at least 0"),
    (["--lr", "-1"], "--lr must be a finite number above 0"),
    (["--lr", "nan"], "--lr must be a finite number above 0"),
    (["--embedding-lr", "-0.1"], "--embedding-lr must be"),
    (["--weight-decay", "inf"], "--weight-decay must be"),
    (["--grad-clip", "0"], "--grad-clip must be a finite number above 0"),
    (["--warmup-frac", "1"], "--warmup-frac must be a finite number at least 0 and below 1"),
    (["--final-lr-frac", "2"], "--final-lr-frac must be"),
    (["--batch-size", "0"], "--batch-size must be a whole number at least 1"),
    (["--evals", "0"], "--evals must be a whole number at least 1"),
    (["--tokens", "0"], "--tokens must be a whole number at least 1"),
    (["--threads", "0"], "--threads: must be a whole number of at least 1"),
    (["--value-path", "move", "--density", "inf"], "--density must be a finite number"),
])
def test_bad_numbers_fail_in_one_line_and_create_nothing(corpus, cache, tmp_path, capsys,
                                                         flags, message):
    argv = tiny_argv(corpus, cache, tmp_path / "run")
    if "--tokens" in flags:
        i = argv.index("--tokens")
        del argv[i:i + 2]
    if "--threads" in flags:
        i = argv.index("--threads")
        del argv[i:i + 2]
    fails_cleanly(capsys, argv + flags, message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags", [["--tokens-per-param", "inf"], ["--flops", "inf"]])
def test_infinite_horizons_fail_in_one_line(corpus, cache, tmp_path, capsys, flags):
    argv = tiny_argv(corpus, cache, tmp_path / "run")
    i = argv.index("--tokens")
    fails_cleanly(capsys, argv[:i] + argv[i + 2:] + flags, "must be a finite number above 0")


@pytest.mark.parametrize("flags", [["--density", "inf"], ["--density", "nan"],
                                   ["--density=-inf"]])
def test_flops_rejects_infinite_densities(capsys, flags):
    fails_cleanly(capsys, ["flops", "--value-path", "move", *flags],
                  "--density must be a finite number above 0")


def test_out_must_be_a_folder_that_can_be_written(corpus, cache, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    fails_cleanly(capsys, tiny_argv(corpus, cache, a_file), "is a file, not a folder", tmp_path)
    fails_cleanly(capsys, tiny_argv(corpus, cache, "/proc/movelab-nowhere/run"),
                  "cannot write the run into --out")


@pytest.mark.parametrize("content,message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "cannot read --from"),
    (b"5", "has no 'config'"),
    (b'{"config": 5}', "not a movelab run config"),
    (b'{"config": {"model": {}, "train": {"tokens": 100, "lr": "fast"}}}',
     "--lr must be a finite number above 0, got 'fast'"),
    (b'{"config": {"model": {}, "train": {"tokens": 100, "corpus": 5}}}',
     "--corpus must name a corpus"),
    (b'{"config": {"model": {"widht": 64}, "train": {"tokens": 100}}}',
     "unknown key 'widht' (did you mean 'width'?)"),
    (b'{"config": {"model": {}, "train": {"tokens": 100}}, "threads": -2}',
     "records threads -2"),
])
def test_bad_from_records_fail_in_one_line(tmp_path, capsys, content, message):
    bad = tmp_path / "result.json"
    bad.write_bytes(content)
    fails_cleanly(capsys, ["train", "--from", str(bad), "--out", str(tmp_path / "run")],
                  message, tmp_path)


def stopped_run(corpus, cache, out, monkeypatch):
    restore = interrupt_nth(monkeypatch, TokenData, "train_batch", 6)
    with pytest.raises(Interrupted):
        train(tiny(corpus), out, cache_dir=cache, progress=False)
    restore()


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[:len(b) // 2], "is not a readable checkpoint"),
    (lambda b: b"", "is not a readable checkpoint"),
    (lambda b: os.urandom(4096), "is not a readable checkpoint"),
    (None, "is not a complete movelab checkpoint (no data_rng)"),
], ids=["truncated", "empty", "garbage", "key-missing"])
def test_a_damaged_checkpoint_fails_resume_in_one_line(corpus, cache, tmp_path, monkeypatch,
                                                       capsys, damage, message):
    out = tmp_path / "run"
    stopped_run(corpus, cache, out, monkeypatch)
    path = out / "checkpoint.pt"
    if damage is None:
        saved = torch.load(path, weights_only=True)
        del saved["data_rng"]
        torch.save(saved, path)
    else:
        path.write_bytes(damage(path.read_bytes()))
    err = fails_cleanly(capsys, tiny_argv(corpus, cache, out, "--resume"), message, out)
    assert "--force" in err


def test_force_checks_the_new_run_before_deleting_the_old_one(corpus, cache, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_argv(corpus, cache, out)) == 0
    argv = tiny_argv(corpus, cache, out, "--force")
    i = argv.index("--corpus")
    missing = argv[:i + 1] + [f"text:{tmp_path / 'missing'}"] + argv[i + 2:]
    fails_cleanly(capsys, missing, "text:", out)
    i = argv.index("--seq-len")
    fails_cleanly(capsys, argv[:i + 1] + ["200000"] + argv[i + 2:], "longer than the validation",
                  out)
    assert (out / "result.json").exists() and (out / "curve.csv").exists()


def test_failed_validation_leaves_no_empty_run_folder(corpus, cache, tmp_path, capsys):
    argv = tiny_argv(corpus, cache, tmp_path / "new" / "run")
    i = argv.index("--seq-len")
    fails_cleanly(capsys, argv[:i + 1] + ["200000"] + argv[i + 2:], "longer than the validation")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [
    ["--preset", "gpu-d32", "--value-path", "move", "--density", "8"],
    ["--width", "1048576", "--heads", "32768"],
    ["--batch-size", "100000"],
], ids=["19B-parameters", "width-1M", "batch-100k"])
def test_a_model_that_cannot_fit_is_refused_before_it_is_built(corpus, cache, tmp_path, capsys,
                                                               flags):
    argv = tiny_argv(corpus, cache, tmp_path / "run")
    for flag in ("--depth", "--width", "--heads", "--vocab-size", "--seq-len", "--batch-size"):
        if flag in flags or flags[0] == "--preset":
            i = argv.index(flag)
            del argv[i:i + 2]
    err = fails_cleanly(capsys, argv + flags, "GiB free", tmp_path)
    assert "needs about" in err and "--ignore-memory-check" in err
    assert not (tmp_path / "run").exists()


def test_the_memory_estimate_counts_weights_gradients_and_optimizer_state():
    from movelab.accounting import analytic_costs, training_memory

    cfg = build_config("cpu-d4", value_path="move", density=4)
    params = analytic_costs(cfg).params_total
    adamw = training_memory(cfg, 8)
    assert adamw.weights == adamw.gradients == 4 * params and adamw.optimizer == 8 * params
    muon = training_memory(cfg, 8, optimizer="muon")
    assert muon.optimizer == 8 * params - 4 * analytic_costs(cfg).params["transformer_matrices"]
    assert training_memory(cfg, 16).activations == 2 * adamw.activations
    assert adamw.total == sum(adamw.to_dict()[k] for k in
                              ("weights", "gradients", "optimizer", "activations"))


# ------------------------------------------------------------------ claims of run folders

def a_dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_claim_is_never_taken_and_a_stale_one_is(corpus, cache, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(claim.me(sleeper.pid))
        fails_cleanly(capsys, tiny_argv(corpus, cache, out), f"being trained by "
                      f"{claim.me(sleeper.pid)}", out)
    finally:
        sleeper.kill()
        sleeper.wait()
    (out / ".lock").write_text(claim.me(a_dead_pid()))
    assert main(tiny_argv(corpus, cache, out)) == 0
    assert (out / "result.json").exists() and not (out / ".lock").exists()


def test_claims_are_exclusive_and_descendants_adopt_them(tmp_path):
    mine = claim.claim(tmp_path)
    assert claim.holder(tmp_path) == mine == claim.me()
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from movelab.training import claim\n"
         "try:\n    claim.claim(sys.argv[1])\nexcept claim.Claimed as e:\n    print(e.holder)\n"
         "else:\n    print('adopted', claim.holder(sys.argv[1]))", str(tmp_path)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert child.stdout.strip() == mine  # not adopting, a live claim cannot be taken
    adopted = subprocess.run(
        [sys.executable, "-c", "import sys; from movelab.training import claim\n"
         "print(claim.claim(sys.argv[1], claim.ancestors()))", str(tmp_path)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    # a descendant takes its ancestor's claim over, in its own name
    assert claim.holder(tmp_path) == adopted.stdout.strip() != mine
    assert not claim.alive(claim.holder(tmp_path))  # that child has exited
    claim.release(tmp_path, mine)  # stale: dropped
    assert claim.holder(tmp_path) is None


def test_committed_runs_still_load_and_hash_to_their_run_ids():
    """The range checks convert nothing: every committed record keeps its run id."""
    root = Path(__file__).resolve().parents[1] / "results"
    paths = sorted(root.glob("*/runs/*/result.json")) + sorted(root.glob("*/runs/*/run.json"))
    if not paths:
        pytest.skip("no committed runs")
    for path in paths:
        recorded = json.loads(path.read_text())
        assert RunConfig.from_dict(recorded["config"]).hash() == recorded["config_hash"] == \
            path.parent.name
