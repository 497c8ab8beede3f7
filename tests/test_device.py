"""The device module: CPU in fp32 everywhere; CUDA (bf16 autocast, TF32, pinned batches) where a
GPU exists. The CUDA tests skip, saying so, on a machine without one."""

import os
import platform
import subprocess
import sys

import pytest
import torch

from movelab.config import ConfigError, build_config
from movelab.model import GPT
from movelab.training import device

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device: the GPU path is tested on a GPU")
PATHS = [dict(value_path="standard"), dict(value_path="lave", density=1),
         dict(value_path="move", density=2)]


@pytest.fixture(autouse=True)
def back_to_cpu():
    yield
    device.choose("cpu")


def tiny(**fields):
    return build_config(depth=2, width=64, heads=2, vocab_size=97, seq_len=32, **fields)


def test_cpu_is_fp32_without_autocast():
    chosen = device.choose("cpu")
    assert chosen == torch.device("cpu") and device.precision(chosen) == "fp32"
    model = GPT(tiny(value_path="move", density=2))
    tokens = torch.randint(0, 97, (2, 32))
    with device.autocast(chosen):
        logits = model(tokens)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, model(tokens))


def test_unknown_or_missing_devices_are_config_errors():
    with pytest.raises(ConfigError, match="choose one of auto, cpu, cuda"):
        device.choose("tpu")
    if not CUDA:
        with pytest.raises(ConfigError, match="no CUDA device"):
            device.choose("cuda")
        assert device.choose("auto") == torch.device("cpu")


@needs_cuda
def test_auto_picks_the_gpu_with_tf32():
    chosen = device.choose("auto")
    assert chosen.type == "cuda" and device.precision(chosen) == "bf16"
    assert torch.backends.cuda.matmul.allow_tf32
    batch = device.to_device(torch.arange(6).view(2, 3), chosen)
    assert batch.device.type == "cuda" and batch.tolist() == [[0, 1, 2], [3, 4, 5]]


@needs_cuda
@pytest.mark.parametrize("fields", PATHS, ids=lambda f: f["value_path"])
def test_bf16_loss_and_gradients_follow_fp32(fields):
    """Under bf16 autocast the loss stays within bf16 rounding of the fp32 loss, and MoVE's fast
    bank gradient on the GPU matches the fp32 CPU reference to bf16 precision."""
    torch.manual_seed(0)
    cpu_model = GPT(tiny(**fields))
    with torch.no_grad():
        for p in cpu_model.parameters():
            p.normal_(0, 0.2)
    gpu_model = GPT(tiny(**fields)).cuda()
    gpu_model.load_state_dict(cpu_model.state_dict())
    tokens = torch.randint(0, 97, (4, 32))
    reference = cpu_model(tokens, tokens)
    reference.backward()
    chosen = device.choose("cuda")
    with device.autocast(chosen):
        loss = gpu_model(tokens.cuda(), tokens.cuda())
    loss.backward()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.cpu(), reference, rtol=2e-2, atol=0)
    for (name, p), q in zip(cpu_model.named_parameters(), gpu_model.parameters()):
        scale = p.grad.abs().max().clamp_min(1e-6)
        assert (q.grad.cpu() - p.grad).abs().max() / scale < 5e-2, name


@needs_cuda
def test_bench_on_cuda_reports_bf16_rows():
    from movelab.bench import run_bench

    rows = run_bench(["cpu-d2"], ["move x1"], batch_size=2, seq_len=16, steps=2, warmup=1,
                     device="cuda", matmul_size=256)
    assert {r.precision for r in rows} == {"bf16"} and all(r.tokens_per_second > 0 for r in rows)


def tiny_run(corpus):
    from movelab.training.config import RunConfig, TrainConfig

    model = build_config(depth=2, width=32, heads=1, vocab_size=320, seq_len=32,
                         value_path="move", density=2)
    return RunConfig(model, TrainConfig(corpus=corpus, tokens=8 * 32 * 30, batch_size=8, evals=2))


@pytest.mark.skipif(CUDA, reason="checks the message a machine without CUDA gives")
def test_train_on_cuda_without_a_gpu_is_a_one_line_error(corpus, cache, tmp_path, capsys):
    from movelab.cli import main

    code = main(["train", "--corpus", corpus, "--depth", "2", "--width", "32", "--heads", "1",
                 "--vocab-size", "320", "--seq-len", "32", "--tokens", "512", "--device", "cuda",
                 "--cache-dir", str(cache), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "result.json").exists()


@needs_cuda
def test_a_tiny_run_on_cuda_matches_the_cpu_run(corpus, cache, tmp_path):
    """Same config on the GPU in bf16 and on the CPU in fp32: both learn, to nearly the same BPB."""
    from movelab.training.loop import train

    cpu = train(tiny_run(corpus), tmp_path / "cpu", cache_dir=cache, progress=False,
                device="cpu")
    gpu = train(tiny_run(corpus), tmp_path / "gpu", cache_dir=cache, progress=False,
                device="cuda")
    assert (gpu["device"], gpu["precision"]) == ("cuda", "bf16")
    assert (cpu["device"], cpu["precision"]) == ("cpu", "fp32")
    assert abs(gpu["val_bpb"] - cpu["val_bpb"]) < 0.05 * cpu["val_bpb"]


GLIBC = platform.libc_ver()[0] == "glibc"
# A training step in small: activations of several sizes made in a "forward" and freed, last
# first, in a "backward", with scratch buffers in between (the sizes cycle with a period of 4),
# and a 40 MiB gradient (above any mmap threshold glibc accepts) made and dropped each step.
STEPS_PAGE_FAULTS = """
import resource, sys, torch
from movelab.training import device
if sys.argv[1] == "keep":
    print(device.keep_freed_host_memory())
def page_faults_of_a_step(step):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    saved = []
    for i in range(12):
        saved.append(torch.ones((1 + (i + step) % 4) << 20))
        scratch = torch.ones(3 << 20); del scratch
    while saved:
        saved.pop()
        grad = torch.ones(1 << 20); del grad
    memory_gradient = torch.ones(10 << 20); del memory_gradient
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(sum([page_faults_of_a_step(step) for step in range(24)][16:]))
"""


def _page_faults(mode: str, **env) -> list[str]:
    out = subprocess.run([sys.executable, "-c", STEPS_PAGE_FAULTS, mode], check=True, text=True,
                         capture_output=True, env={**os.environ, **env}).stdout
    return out.split("\n")[:-1]


@pytest.mark.skipif(not GLIBC, reason="the host allocator setting is glibc's (mallopt)")
def test_kept_host_memory_ends_the_page_faults_of_repeated_steps():
    """glibc's default returns freed blocks to the kernel, so steps that allocate what the
    previous one freed keep faulting on fresh pages; once the process keeps freed memory, steps
    after the first period (the peak reached) fault on none."""
    state, kept = _page_faults("keep")
    assert state == "glibc: freed memory kept"
    # glibc's default varies from process to process (its dynamic mmap threshold and heap layout:
    # 0 to 341,192 faults over these steps on one machine, 2026-12-02): the contrast needs a
    # default process that does fault, so up to three are tried
    default = 0
    for _ in range(3):
        default = max(default, int(_page_faults("default")[0]))
        if default > 5000:
            break
    else:
        pytest.skip(f"three default glibc processes faulted at most {default} times on these "
                    "steps: no contrast to show here")
    assert int(kept) < default / 10, (default, kept)


@pytest.mark.skipif(not GLIBC, reason="the host allocator setting is glibc's (mallopt)")
def test_the_environments_malloc_settings_win():
    state, _ = _page_faults("keep", MALLOC_ARENA_MAX="4")
    assert state == "glibc: the environment's MALLOC_* settings"


def test_a_run_records_its_host_allocator(corpus, cache, tmp_path):
    from movelab.training.loop import train

    result = train(tiny_run(corpus), tmp_path / "run", cache_dir=cache, progress=False,
                   device="cpu")
    assert result["host_allocator"] == device.host_allocator()
    if GLIBC:  # the loop turned it on (or found the environment's own settings)
        assert result["host_allocator"].startswith("glibc: ")
