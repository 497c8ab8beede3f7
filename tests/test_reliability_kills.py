"""The randomised kill test (docs/guarantees.md): a tiny run is killed again and again, by SIGINT,
SIGTERM or SIGKILL, at random moments of its loop (a batch just drawn, a forward pass, an
optimizer update, inside a validation pass, in the middle of a checkpoint write, while the
result is written), resumed each time, and ends exactly as the uninterrupted run: curve.csv byte
for byte, result.json in every field but the timing ones. MOVELAB_KILL_SEED picks another plan."""

import os
import random
import signal
import subprocess
import sys

from test_reliability import same_run

STEPS, EVALS = 40, 5

# Run in a child process: `movelab train ...` with one signal sent to itself at the n-th
# moment of one kind. A checkpoint or result write is cut in the middle: half the bytes sit in
# the temporary file that a real write leaves behind when killed there.
DRIVER = r'''
import os, sys, tempfile
import torch
from movelab import cli
from movelab.data import TokenData, cache
from movelab.training import loop, record

moment, nth, sig, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
calls = [0]

def hit():
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), sig)  # SIGKILL ends here; SIGINT / SIGTERM go to the handler

def around(owner, name, when):
    real = getattr(owner, name)
    def wrapped(self, *args, **kw):
        if when(self, "before"):
            hit()
        out = real(self, *args, **kw)
        if when(self, "after"):
            hit()
        return out
    setattr(owner, name, wrapped)

def cut_write(name):
    real = cache.write_atomically
    def write_atomically(path, data):
        if path.name == name:
            calls[0] += 1
            if calls[0] == nth:
                fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.partial-")
                os.write(fd, data[:len(data) // 2])
                os.close(fd)
                os.kill(os.getpid(), sig)
                os.unlink(partial)  # still alive (the signal waits): the write goes on
        return real(path, data)
    cache.write_atomically = write_atomically

if moment == "draw":
    around(TokenData, "train_batch", lambda self, at: at == "after")
elif moment == "forward":
    around(loop.GPT, "forward", lambda self, at: at == "before" and self.training)
elif moment == "evaluate":
    around(loop.GPT, "forward", lambda self, at: at == "before" and not self.training)
elif moment == "update":
    around(torch.optim.AdamW, "step", lambda self, at: at == "before")
elif moment == "checkpoint-write":
    cut_write(record.CHECKPOINT)
elif moment == "result-write":
    cut_write(record.RESULT)
sys.exit(cli.main(argv))
'''

# every moment, every signal; SIGKILL inside evaluation and inside a write (and the result
# write last: it comes once, at the end)
PLAN = [("evaluate", signal.SIGKILL), ("checkpoint-write", signal.SIGKILL),
        ("evaluate", signal.SIGINT), ("checkpoint-write", signal.SIGTERM),
        ("draw", signal.SIGTERM), ("update", signal.SIGINT), ("forward", signal.SIGKILL)]


def test_random_kills_resume_to_the_uninterrupted_run(corpus, cache, tmp_path):
    seed = int(os.environ.get("MOVELAB_KILL_SEED", "13"))
    rng = random.Random(seed)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train(out, moment="none", nth=0, sig=0, *extra):
        argv = ["train", "--depth", "1", "--width", "64", "--heads", "2", "--vocab-size", "320",
                "--seq-len", "32", "--batch-size", "4", "--tokens", str(4 * 32 * STEPS),
                "--evals", str(EVALS), "--corpus", corpus, "--cache-dir", str(cache), "--out",
                str(out), "--threads", "1", "--no-progress", *extra]
        proc = subprocess.run([sys.executable, str(driver), moment, str(nth), str(int(sig)),
                               *argv], capture_output=True, text=True, env=env, timeout=300)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode

    assert train(tmp_path / "straight") == 0
    plan = rng.sample(PLAN, len(PLAN)) + [("result-write", rng.choice(PLAN)[1])]
    out, landed = tmp_path / "killed", []
    for moment, sig in plan:
        nth = {"evaluate": rng.randint(1, 3), "checkpoint-write": rng.randint(1, 2),
               "result-write": 1}.get(moment, rng.randint(1, 6))
        status = train(out, moment, nth, sig, "--resume")
        if status == 0:  # finished before that moment came
            break
        assert status == (-signal.SIGKILL if sig == signal.SIGKILL else 130), (moment, sig)
        landed.append((moment, sig.name, nth))
    assert len(landed) >= len(PLAN), f"seed {seed}: only {landed} landed"
    if not (out / "result.json").exists():
        assert train(out, "none", 0, 0, "--resume") == 0
    same_run(out, tmp_path / "straight")
    assert sorted(p.name for p in out.iterdir()) == ["curve.csv", "model.pt", "result.json",
                                                   "run.json"], \
        f"seed {seed}, kills {landed}: left behind {sorted(p.name for p in out.iterdir())}"
