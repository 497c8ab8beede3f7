"""`movelab plan` and `movelab sweep plan`: the plan's numbers are the accounting's and the
committed rows' (FLOPs, steps and epochs exactly), repetition is flagged, wall clock follows from
the timed (or profiled) step times by its stated formula, timings are cached, and the memory
estimate brackets the peak that `movelab bench` measures. No timed assertions."""

import csv
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from movelab import bench
from movelab.accounting import analytic_costs
from movelab.cli import main
from movelab.config import ConfigError, build_config
from movelab.accounting import training_memory
from movelab.memory import checkpoint_bytes, memory_estimate
from movelab.model import GPT
from movelab.plan import H200, _makespan, format_plan, load_profile, plan_runs, plan_sweep
from movelab.sweep import load_sweep
from movelab.variant import Variant
from movelab.training import record
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.optim import build_optimizers

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(log=lambda line: None)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cpu_text_plan(tmp_path_factory):
    """The plan of the committed cpu-text sweep, without timing (the wiki corpus is prepared
    into the session's cache to count its training split)."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    return plan_sweep(load_sweep("cpu-text", ROOT / "results"), measure=False, cache_dir=cache,
                      **QUIET)


def committed_rows(sweep):
    with open(ROOT / "results" / sweep / "runs.csv") as file:
        return {row["run_id"]: row for row in csv.DictReader(file)}


def test_cpu_text_plan_equals_the_committed_rows(cpu_text_plan):
    rows = committed_rows("cpu-text")
    assert {r.run_id for r in cpu_text_plan.runs} == set(rows)  # the sweep is complete
    for planned in cpu_text_plan.runs:
        row = rows[planned.run_id]
        assert planned.status == "done"
        assert planned.train_flops == int(row["train_flops"])
        assert planned.tokens == int(row["tokens_seen"]) and planned.steps == int(row["steps"])
        assert planned.epochs == pytest.approx(float(row["epochs"]), rel=1e-12)
        assert (planned.params_total, planned.params_active, planned.params_memory) == (
            int(row["params_total"]), int(row["params_active"]), int(row["params_memory"]))
    totals = cpu_text_plan.totals()
    assert totals["train_flops"] == sum(int(r["train_flops"]) for r in rows.values())


def test_cpu_text_plan_flags_every_run_that_repeats_the_corpus(cpu_text_plan):
    rows = committed_rows("cpu-text")
    for planned in cpu_text_plan.runs:
        repeats = float(rows[planned.run_id]["epochs"]) > 1.0
        assert any("the corpus repeats" in w for w in planned.warnings) == repeats
    d10 = [r for r in cpu_text_plan.runs if r.depth == 10]
    assert d10 and all(w.startswith("4.97 epochs of wiki") for r in d10 for w in r.warnings)
    totals = cpu_text_plan.totals()
    assert totals["max_epochs"] == pytest.approx(4.966, abs=1e-3)
    assert totals["runs_above_one_epoch"] == sum(float(r["epochs"]) > 1 for r in rows.values())
    assert f"max epochs 4.97 ({totals['runs_above_one_epoch']} run(s) above 1.0!)" in \
        format_plan(cpu_text_plan)


def tiny_run(corpus, tokens=4096, **model):
    cfg = build_config(**{"depth": 2, "width": 32, "heads": 1, "vocab_size": 320,
                          "seq_len": 32, **model})
    return RunConfig(cfg, TrainConfig(corpus=corpus, tokens=tokens, batch_size=4, evals=3))


@pytest.fixture
def fake_bench(monkeypatch):
    """bench_variant replaced by fixed step times; counts the shapes it is asked to time."""
    calls = []

    def timed(cfg, *, batch_size, steps, warmup, compile=False, **kw):
        calls.append((cfg, batch_size, compile))
        return bench.StepTimes(step=0.5, forward=0.128, backward=0.3, optimizer=0.07,
                               first_step=1.0, peak_memory_bytes=12345)
    monkeypatch.setattr(bench, "bench_variant", timed)
    return calls


def test_wall_clock_is_steps_times_the_timed_step_plus_evaluations(corpus, cache, tmp_path,
                                                                   fake_bench):
    runs = [tiny_run(corpus), tiny_run(corpus, tokens=8192), tiny_run(corpus, value_path="move")]
    entries = [(run, "v", [], "new") for run in runs]
    plan = plan_runs("p", entries, cache_dir=tmp_path, jobs=2, **QUIET)
    assert len(fake_bench) == 2  # two distinct shapes: the token budget is not part of one
    from movelab.data import prepare_text_data

    data = prepare_text_data(corpus, 320, cache, progress=False)
    val_tokens = (len(data.val_tokens) - 1) // 32 * 32
    for planned, run in zip(plan.runs, runs):
        steps = run.train.total_steps(run.model)
        eval_seconds = 3 * val_tokens * 0.128 / (4 * 32)
        assert planned.steps == steps and planned.tokens == steps * 4 * 32
        assert planned.eval_seconds == pytest.approx(eval_seconds)
        assert planned.wall_seconds == pytest.approx(steps * 0.5 + eval_seconds)
        assert planned.epochs == pytest.approx(planned.tokens / data.epoch_tokens)
        assert planned.peak_memory_measured == 12345
    walls = [r.wall_seconds for r in plan.runs]
    assert plan.totals()["run_seconds"] == pytest.approx(sum(walls))

    again = plan_runs("p", entries, cache_dir=tmp_path, **QUIET)  # cached: nothing timed
    assert len(fake_bench) == 2 and [r.wall_seconds for r in again.runs] == walls
    untimed = plan_runs("p", [(tiny_run(corpus, depth=4, width=64, heads=2), "v", [], "new")],
                        cache_dir=tmp_path, measure=False, **QUIET)
    assert len(fake_bench) == 2 and untimed.runs[0].wall_seconds is None
    plan_runs("p", entries, cache_dir=tmp_path, retime=True, **QUIET)
    assert len(fake_bench) == 4


def test_a_run_the_loop_would_compile_is_timed_compiled(corpus, tmp_path, fake_bench,
                                                        monkeypatch):
    """The plan times the step the run will take: eager below the loop's compile threshold,
    compiled above it, each cached under its own key."""
    from movelab.training import loop

    entries = [(tiny_run(corpus), "v", [], "new")]
    plan_runs("p", entries, cache_dir=tmp_path, **QUIET)
    monkeypatch.setattr(loop, "AUTO_COMPILE_TRAIN_FLOPS", 0.0)
    plan = plan_runs("p", entries, cache_dir=tmp_path, **QUIET)
    assert [compiled for _, _, compiled in fake_bench] == [False, True]
    assert "compiled" in plan.runs[0].timing_source
    plan_runs("p", entries, cache_dir=tmp_path, **QUIET)  # cached: nothing timed again
    assert len(fake_bench) == 2


def test_sweep_wall_clock_replays_cheapest_first_jobs_at_a_time():
    runs = [SimpleNamespace(train_flops=f, wall_seconds=w) for f, w in ((1, 10), (2, 30), (3, 5))]
    assert _makespan(runs, 1) == 45
    assert _makespan(runs, 2) == 30   # 10 then 5 on one slot, 30 on the other
    assert _makespan(runs, 3) == 30


def run_of(preset, variant, batch_size):
    return RunConfig(build_config(preset, **Variant.parse(variant).model_args),
                     TrainConfig(corpus="wiki", tokens=1, batch_size=batch_size))


def test_a_profile_gives_its_measured_step_and_scales_it_by_batch():
    cfg = run_of("gpu-d12", "move x4", 8).model
    measured = H200.step_time(cfg, 8)
    assert measured.step_seconds == pytest.approx(0.1316) and "measured" in measured.source
    doubled = H200.step_time(cfg, 16)
    assert doubled.step_seconds == pytest.approx(0.0196 + 2 * (0.1316 - 0.0196))


@pytest.fixture
def unprepared(monkeypatch):
    """No corpus can be prepared (as for FineWeb-Edu here): epochs become unknown."""
    from movelab.data import DataError
    from movelab.training import tasks

    def prepare_data(*args, **kw):
        raise DataError("not on this machine")
    monkeypatch.setattr(tasks, "prepare_data", prepare_data)


def test_a_profile_extrapolates_another_depth_by_flops_and_parameters(unprepared):
    d12, d20 = run_of("gpu-d12", "move x4", 8).model, run_of("gpu-d20", "move x4", 8).model
    c12, c20 = analytic_costs(d12), analytic_costs(d20)
    step = H200.step_time(d20, 8)
    expected = (0.0196 * c20.params_total / c12.params_total
                + (0.1316 - 0.0196) * c20.flops_per_token_train / c12.flops_per_token_train)
    assert step.step_seconds == pytest.approx(expected) and "extrapolated" in step.source
    assert H200.step_time(run_of("gpu-d12", "move x16", 8).model, 8) is None
    plan = plan_runs("p", [(run_of("gpu-d12", "move x16", 8), "v", [], "new")], profile=H200,
                     **QUIET)
    assert plan.runs[0].wall_seconds is None
    assert "no step time: profile h200 has no row of this variant" in plan.runs[0].warnings


def test_a_profile_plan_takes_each_runs_own_precision_and_says_when_the_profile_times_another(
        unprepared):
    auto = run_of("gpu-d12", "standard", 8)
    fp32 = RunConfig(auto.model, replace(auto.train, precision="fp32"))
    plan = plan_runs("p", [(r, "v", [], "new") for r in (auto, fp32)], profile=H200, **QUIET)
    on_cuda, asked_fp32 = plan.runs
    assert on_cuda.memory == memory_estimate(auto, precision="bf16").to_dict()
    assert asked_fp32.memory == memory_estimate(fp32, precision="fp32").to_dict()
    assert asked_fp32.memory != on_cuda.memory
    mismatch = "profile h200 times bf16 steps, this run computes in fp32 (--precision)"
    assert mismatch in asked_fp32.warnings and mismatch not in on_cuda.warnings


def test_a_profile_plan_counts_device_hours_and_checks_memory_per_rank(unprepared):
    runs = [run_of("gpu-d12", "standard", 256), run_of("gpu-d20", "move x8", 256)]
    plan = plan_runs("p", [(r, "v", [], "new") for r in runs], profile=H200, ranks=8, **QUIET)
    assert plan.notes == ["corpus wiki cannot be prepared here, so its epochs are unknown: "
                          "not on this machine"]
    small, big = plan.runs
    assert small.epochs is None and small.memory == memory_estimate(
        runs[0], precision="bf16", ranks=8).to_dict()
    assert small.memory["total"] < H200.memory_bytes < big.memory["total"]
    assert [w for w in big.warnings if "GiB per process" in w] and not small.warnings
    assert plan.totals()["device_hours"] == pytest.approx(
        8 * (small.wall_seconds + big.wall_seconds) / 3600)


def test_a_profile_file_reads_back_and_a_bad_one_says_what_it_needs(tmp_path):
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"name": "mine", "device": "cuda", "precision": "bf16",
                                "memory_bytes": 80 * 2**30, "rows": [
                                    {**H200.rows[0], "mfu": 0.3}]}))
    profile = load_profile(str(path))
    assert (profile.name, profile.rows) == ("mine", (H200.rows[0],))
    path.write_text("{}")
    with pytest.raises(ConfigError, match="not a device profile"):
        load_profile(str(path))
    with pytest.raises(ConfigError, match="no device profile 'a100'"):
        load_profile("a100")


@pytest.mark.parametrize("variant", ["standard", "lave x1", "lave x2 +g0", "move x4",
                                     "move x1 g0=1"])
def test_memory_estimate_brackets_the_peak_bench_measures(variant):
    cfg = build_config(depth=2, width=64, heads=2, vocab_size=512, seq_len=64,
                       **Variant.parse(variant).model_args)
    measured = bench.bench_variant(cfg, batch_size=4, steps=1, warmup=1).peak_memory_bytes
    estimate = training_memory(cfg, 4).total
    assert measured <= 1.3 * estimate and estimate <= 1.3 * measured


def test_memory_estimate_splits_the_batch_over_ranks_and_counts_ddp_buckets():
    run = run_of("gpu-d12", "move x8", 256)
    one, eight = memory_estimate(run, ranks=1), memory_estimate(run, ranks=8)
    assert eight.activations * 8 == one.activations
    assert eight.gradients == 2 * one.gradients and eight.weights == one.weights
    muon = memory_estimate(replace(run, train=replace(run.train, optimizer="muon")))
    matrices = analytic_costs(run.model).params["transformer_matrices"]
    assert one.optimizer - muon.optimizer == 4 * matrices


def test_checkpoint_bytes_are_the_size_of_a_checkpoint(tmp_path):
    cfg = build_config(depth=2, width=64, heads=2, vocab_size=512, seq_len=64,
                       value_path="move", density=4)
    model = GPT(cfg)
    optimizers = build_optimizers(model, TrainConfig(tokens=1))
    tokens = __import__("torch").randint(512, (2, 65))
    model(tokens[:, :-1], tokens[:, 1:]).backward()
    for optimizer in optimizers:
        optimizer.step()
    record.save_checkpoint(tmp_path, {"config_hash": "x", "model": model.state_dict(),
                                      "optimizers": [o.state_dict() for o in optimizers],
                                      "data_rng": "{}", "loop_state": "{}"})
    size = (tmp_path / record.CHECKPOINT).stat().st_size
    assert checkpoint_bytes(cfg) <= size <= 1.05 * checkpoint_bytes(cfg)


def test_plan_cli_prints_json_of_one_run(corpus, cache, capsys):
    assert main(["plan", "--corpus", corpus, "--cache-dir", str(cache), "--depth", "2",
                 "--width", "32", "--heads", "1", "--vocab-size", "320", "--seq-len", "32",
                 "--tokens", "4096", "--batch-size", "4", "--no-timing", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    (run,) = plan["runs"]
    cfg = build_config(depth=2, width=32, heads=1, vocab_size=320, seq_len=32)
    assert run["train_flops"] == 4096 * analytic_costs(cfg).flops_per_token_train
    assert run["steps"] == 32 and run["wall_seconds"] is None and run["status"] == "new"


@pytest.mark.parametrize("argv, message", [
    (["sweep", "plan", "no-such-sweep"], "no sweep 'no-such-sweep'"),
    (["plan", "--depth", "2", "--profile", "tpu", "--no-timing"], "no device profile 'tpu'"),
])
def test_bad_plan_input_fails_with_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_sweep_run_prints_the_plan_totals_first(tmp_path, monkeypatch, capsys):
    from movelab import sweep as sweeps

    monkeypatch.setattr(sweeps, "run_sweep", lambda sweep, **kw: 0)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.toml").write_text(
        '[train]\ncorpus = "text:/nonexistent"\nbatch_size = 2\n[budget]\ntokens = 1024\n'
        '[[group]]\nname = "g"\ndepths = [2, 4]\nvariants = ["standard"]\n')
    assert main(["sweep", "run", "s", "--results-dir", str(tmp_path)]) == 0
    flops = sum(run.run.train.tokens * analytic_costs(run.run.model).flops_per_token_train
                for run in load_sweep("s", tmp_path).runs)
    assert capsys.readouterr().out.startswith(
        f"plan of the runs to train: 2 runs, 2.05k tokens, {flops:.3g} FLOPs, max epochs ?")
