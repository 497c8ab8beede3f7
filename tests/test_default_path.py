"""The default training path: compiled where it pays on the CPU, eager where it cannot or does
not (short runs, CUDA, the lazy update), and the record says which ran."""

import pytest
import torch

from movelab.cli import build_parser
from movelab.config import build_config
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.loop import AUTO_COMPILE_TRAIN_FLOPS, auto_compile, train

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def run(tokens: int, **train) -> RunConfig:
    return RunConfig(build_config("cpu-d8"), TrainConfig(tokens=tokens, **train))


def test_long_cpu_runs_compile_and_short_ones_stay_eager():
    long = run(tokens=int(AUTO_COMPILE_TRAIN_FLOPS / 1e6))  # cpu-d8: ~1.6e7 FLOPs a token
    short = run(tokens=65536)
    assert auto_compile(long, CPU) and not auto_compile(short, CPU)


def test_cuda_and_the_lazy_update_stay_eager_by_default():
    long = dict(tokens=10**9)
    assert not auto_compile(run(**long), CUDA)
    assert not auto_compile(run(**long, memory_update="lazy"), CPU)


def test_a_short_run_records_eager_as_no_compile_does(corpus, cache, tmp_path):
    tiny = RunConfig(build_config(depth=1, width=32, heads=1, seq_len=32),
                     TrainConfig(corpus=corpus, tokens=2048, evals=1))
    auto = train(tiny, tmp_path / "auto", cache_dir=cache, progress=False)
    eager = train(tiny, tmp_path / "eager", cache_dir=cache, progress=False, compile=False)
    assert auto["compiled"] is False and auto["val_bpb"] == eager["val_bpb"]


@pytest.mark.parametrize("flag,value", [([], None), (["--compile"], True),
                                        (["--no-compile"], False)])
def test_the_compile_flag_has_three_states(flag, value):
    args = build_parser().parse_args(["train", "--preset", "cpu-d2", "--out", "x", *flag])
    assert args.compile is value
