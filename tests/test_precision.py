"""TrainConfig.precision: auto keeps every committed run's id and computation (fp32 on the CPU,
bf16 on CUDA); bf16 on the CPU really computes in bf16 (close to fp32, not equal) and says so in
the record; the bench and the plan time each precision apart."""

import pytest
import torch

from movelab import bench
from movelab.bench import format_bench, run_bench
from movelab.cli import main
from movelab.config import ConfigError, build_config
from movelab.data import prepare_text_data
from movelab.plan import _Timer
from movelab.training import device as chosen_device
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.loop import evaluate, train

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
TINY_MODEL = dict(depth=1, width=32, heads=1, seq_len=32)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_is_fp32_on_the_cpu_and_bf16_on_cuda_and_an_explicit_choice_holds_on_both():
    assert [chosen_device.precision(d) for d in (CPU, CUDA)] == ["fp32", "bf16"]
    for asked in ("fp32", "bf16"):
        assert [chosen_device.precision(d, asked) for d in (CPU, CUDA)] == [asked, asked]
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        chosen_device.precision(CPU, "fp16")
    with pytest.raises(ConfigError, match="--precision"):
        TrainConfig(tokens=1, precision="fp16")


def test_auto_leaves_the_config_and_its_hash_as_before_and_bf16_is_a_new_run():
    model = build_config("cpu-d2")
    auto = RunConfig(model, TrainConfig(tokens=1000))
    bf16 = RunConfig(model, TrainConfig(tokens=1000, precision="bf16"))
    assert "precision" not in auto.to_dict()["train"]
    assert bf16.to_dict()["train"]["precision"] == "bf16"
    assert auto.hash() != bf16.hash()
    assert RunConfig.from_dict(bf16.to_dict()).hash() == bf16.hash()


def test_bf16_on_the_cpu_computes_in_bf16_within_rounding_of_fp32():
    torch.manual_seed(0)
    from movelab.model import GPT

    cfg = build_config(**TINY_MODEL, vocab_size=64)
    model = GPT(cfg).eval()
    tokens = torch.randint(64, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        with chosen_device.autocast(CPU, "bf16"):
            logits = model(tokens)
            loss_bf16 = model(tokens, tokens).item()
        with chosen_device.autocast(CPU):  # auto: fp32 on the CPU
            assert model(tokens).dtype == torch.float32
            loss_fp32 = model(tokens, tokens).item()
    assert logits.dtype == torch.bfloat16
    assert loss_bf16 != loss_fp32 and loss_bf16 == pytest.approx(loss_fp32, rel=2e-2)


def test_a_bf16_run_records_its_precision_and_lands_near_the_fp32_run(corpus, cache, tmp_path):
    def tiny(**train_fields):
        return RunConfig(build_config(**TINY_MODEL),
                         TrainConfig(corpus=corpus, tokens=8192, evals=1, **train_fields))

    fp32 = train(tiny(), tmp_path / "fp32", cache_dir=cache, progress=False, compile=False)
    bf16 = train(tiny(precision="bf16"), tmp_path / "bf16", cache_dir=cache, progress=False,
                 compile=False)
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert bf16["val_bpb"] != fp32["val_bpb"]
    assert bf16["val_bpb"] == pytest.approx(fp32["val_bpb"], rel=0.03)


def test_evaluate_scores_in_the_precision_it_is_given():
    from movelab.model import GPT

    data = prepare_text_data("recall:K=4,tokens=30000", 128)
    torch.manual_seed(0)
    model = GPT(build_config(**TINY_MODEL, vocab_size=data.vocab_size))
    x, y = data.val_windows(TINY_MODEL["seq_len"])
    fp32, bf16 = (evaluate(model, data, x, y, precision=p) for p in ("fp32", "bf16"))
    assert fp32 != bf16 and bf16[0] == pytest.approx(fp32[0], rel=2e-2)


def test_bench_times_each_precision_against_its_own_standard_and_notes_bf16_over_fp32(
        monkeypatch):
    seconds = {("fp32", "d2 standard"): 1.0, ("fp32", "d2 move x4 (M=4)"): 1.2,
               ("bf16", "d2 standard"): 0.5, ("bf16", "d2 move x4 (M=4)"): 0.75}

    def fake_bench(cfg, *, precision, **kwargs):
        step = seconds[chosen_device.precision(CPU, precision), cfg.label]
        return bench.StepTimes(step=step, forward=step / 3, backward=step / 2,
                               optimizer=step / 6, first_step=step, peak_memory_bytes=10)

    peaks = {"fp32": 100.0, "bf16": 400.0}
    monkeypatch.setattr(bench, "bench_variant", fake_bench)
    monkeypatch.setattr(bench, "measure_matmul_peak", lambda *a, requested_precision, **k:
                        peaks[chosen_device.precision(CPU, requested_precision)])
    rows = {(r.precision, r.variant): r for r in run_bench(
        ["cpu-d2"], ["move x4"], batch_size=2, seq_len=16, steps=1, warmup=0, threads=1,
        matmul_size=8, precisions=("auto", "bf16"))}
    assert list(rows) == [("fp32", "standard"), ("bf16", "standard"), ("fp32", "move x4"),
                          ("bf16", "move x4")]
    assert rows["bf16", "move x4"].step_ratio == pytest.approx(1.5)  # over bf16 standard
    assert rows["fp32", "move x4"].step_ratio == pytest.approx(1.2)
    assert rows["bf16", "standard"].fp32_speedup == pytest.approx(2.0)
    assert rows["bf16", "move x4"].fp32_speedup == pytest.approx(1.6)
    assert rows["fp32", "standard"].fp32_speedup is None
    assert (rows["bf16", "standard"].matmul_peak_flops, rows["fp32", "standard"].matmul_peak_flops
            ) == (400.0, 100.0)
    table = format_bench(list(rows.values()))
    assert table.splitlines()[0].endswith("--precision fp32,bf16")
    assert "bf16 eager" in table and "2.00x fp32" in table


def test_bench_rejects_an_unknown_precision_in_one_line(capsys):
    assert main(["bench", "--preset", "cpu-d2", "--precision", "fp32,fp8"]) == 2
    err = capsys.readouterr().err
    assert "unknown precision 'fp8'" in err and "Traceback" not in err


def test_the_plans_timing_cache_keeps_fp32_keys_and_times_bf16_apart(tmp_path):
    timer = _Timer(tmp_path, threads=1, measure=False, retime=False, log=print)
    cfg = build_config("cpu-d2")
    fp32, bf16 = (timer.key(cfg, 8, False, p) for p in ("fp32", "bf16"))
    assert fp32 != bf16 and "bf16" in bf16 and "fp32" not in fp32
    assert timer.step_time(cfg, 8, precision="bf16") is None  # never timed, not measured


def test_under_cpu_bf16_autocast_attention_runs_in_fp32(monkeypatch):
    """CPU flash attention is slower in bf16 than in fp32 (research log 2026-12-02, session 11):
    the model attends in fp32 under CPU autocast, and returns to bf16 after."""
    from movelab.model import GPT

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append(({q.dtype, k.dtype, v.dtype}, torch.is_autocast_enabled("cpu")))
        return sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model = GPT(build_config(**TINY_MODEL, vocab_size=64))
    tokens = torch.randint(64, (2, 32), generator=torch.Generator().manual_seed(1))
    with chosen_device.autocast(CPU, "bf16"):
        model(tokens, tokens).backward()
    assert seen == [({torch.float32}, False)] * TINY_MODEL["depth"]


def test_a_device_profile_from_a_bench_of_two_precisions_times_with_its_own(tmp_path):
    import json

    from movelab.plan import load_profile

    row = dict(preset="cpu-d2", variant="standard", batch_size=8, seq_len=256,
               optimizer_seconds=0.01)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({
        "name": "amx", "device": "cpu", "precision": "bf16", "memory_bytes": 2**30,
        "rows": [dict(row, precision="fp32", step_seconds=0.2),
                 dict(row, precision="bf16", step_seconds=0.1)]}))
    profile = load_profile(str(path))
    assert len(profile.rows) == 1
    assert profile.step_time(build_config("cpu-d2"), 8).step_seconds == pytest.approx(0.1)
