"""Sweeps: expansion of the sweep file, and a real (tiny) sweep that trains what is missing."""

import csv

import pytest

from movelab.accounting import analytic_costs
from movelab.config import ConfigError, build_config
from movelab.sweep import RUNS_CSV_COLUMNS, load_sweep, run_sweep

TINY_MODEL = 'model = {width = 32, heads = 1, vocab_size = 320, seq_len = 32}'


def write_sweep(root, corpus, body, budget="tokens_per_param = 0.2", evals=2):
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "sweep.toml").write_text(f"""
description = "test"
[train]
corpus = "{corpus}"
batch_size = 4
evals = {evals}
[budget]
{budget}
{body}
""")
    return load_sweep("tiny", root)


def test_expansion_shares_a_token_budget_per_depth_and_dedupes(tmp_path):
    sweep = write_sweep(tmp_path, "wiki", f"""
[[group]]
name = "grid"
depths = [2, 4]
variants = ["standard", "move x2", "lave x1"]
{TINY_MODEL}
[[group]]
name = "seeds"
depths = [2]
seeds = [0, 1]
variants = ["standard"]
{TINY_MODEL}
""")
    assert len(sweep.runs) == 2 * 3 + 1
    for depth in (2, 4):
        runs = [p for p in sweep.runs if p.run.model.depth == depth]
        assert len({p.run.train.tokens for p in runs}) == 1
        standard = build_config(depth=depth, width=32, heads=1, vocab_size=320, seq_len=32)
        expected = 0.2 * analytic_costs(standard).params_active
        assert abs(runs[0].run.train.tokens - expected) <= 4 * 32 / 2
    shared = [p for p in sweep.runs if p.groups == ["grid", "seeds"]]
    assert len(shared) == 1 and shared[0].run.train.seed == 0
    assert shared[0].role == "main"  # the first role of its groups'
    assert {p.role for p in sweep.runs if p.groups == ["seeds"]} == {"seed"}


def test_a_group_declares_its_role_and_its_variants_spell_their_fields(tmp_path):
    sweep = write_sweep(tmp_path, "wiki", f"""
[[group]]
name = "depth ladder"
role = "main"
depths = [2]
variants = ["standard", "move x4 g0=1", {{label = "dense, width 64", width = 64, heads = 2}}]
{TINY_MODEL}
[[group]]
name = "ablation"
depths = [2]
variants = ["lave x1 +g0"]
{TINY_MODEL}
""")
    assert [(p.variant, p.role) for p in sweep.runs] == [
        ("standard", "main"), ("move x4 g0=1", "main"), ("dense, width 64", "main"),
        ("lave x1 +g0", "other")]
    assert sweep.runs[1].run.model.gate_standard is False
    assert sweep.runs[2].run.model.width == 64
    with pytest.raises(ConfigError, match="unknown role 'grid'; choose one of main, seed"):
        write_sweep(tmp_path / "again", "wiki", f"[[group]]\nname = 'g'\nrole = 'grid'\n"
                                                 f"depths = [2]\nvariants = ['standard']\n"
                                                 f"{TINY_MODEL}")


@pytest.mark.parametrize("budget", ["", "tokens = 1000\ntokens_per_param = 1.0"])
def test_a_sweep_needs_exactly_one_budget_rule(tmp_path, budget):
    with pytest.raises(ConfigError, match="needs one rule in \\[budget\\]"):
        write_sweep(tmp_path, "wiki", f"[[group]]\nname = 'g'\ndepths = [2]\n"
                                      f"variants = ['standard']\n{TINY_MODEL}", budget)


def test_a_fixed_token_budget_is_the_same_at_every_depth(tmp_path):
    sweep = write_sweep(tmp_path, "wiki", f"""
[[group]]
name = "grid"
depths = [2, 4]
variants = ["standard", "move x2"]
{TINY_MODEL}
""", budget="tokens = 3000")
    assert {p.run.train.tokens for p in sweep.runs} == {2944}  # the nearest whole number of batches (23 x 4 x 32)


def test_a_tiny_sweep_trains_what_is_missing_and_consolidates(tmp_path, corpus, cache, monkeypatch):
    monkeypatch.setenv("MOVELAB_CACHE", str(cache))
    sweep = write_sweep(tmp_path, corpus, f"""
[[group]]
name = "grid"
depths = [2]
variants = ["standard", "move x2"]
{TINY_MODEL}
""")
    assert {sweep.status(p) for p in sweep.runs} == {"missing"}
    messages = []
    assert run_sweep(sweep, jobs=2, log=messages.append) == 0
    assert {sweep.status(p) for p in sweep.runs} == {"done"}
    with open(tmp_path / "tiny" / "runs.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 and tuple(rows[0]) == RUNS_CSV_COLUMNS
    assert {r["value_path"] for r in rows} == {"standard", "move"}
    assert {(r["variant"], r["role"]) for r in rows} == {("standard", "main"), ("move x2", "main")}
    assert all(float(r["val_bpb"]) > 0 and r["git_commit"] for r in rows)
    assert {(r["device"], r["precision"]) for r in rows} == {("cpu", "fp32")}
    messages.clear()
    run_sweep(sweep, jobs=2, log=messages.append)  # nothing left to do
    assert messages[0].startswith("tiny: 0 runs to train (2 done)")


def test_collect_from_another_results_folder_copies_records_only_and_overwrites_nothing(
        tmp_path, capsys):
    from movelab.cli import main
    from movelab.sweep import import_finished
    from movelab.training import claim

    body = f"""
[[group]]
name = "grid"
depths = [2]
variants = ["standard", "move x2", "lave x1"]
{TINY_MODEL}
"""
    body += f"""
[[group]]
name = "seeds"
depths = [2]
seeds = [1, 2]
variants = ["standard"]
{TINY_MODEL}
"""
    here = write_sweep(tmp_path / "main", "wiki", body)
    there = write_sweep(tmp_path / "worktree", "wiki", body)
    finished, stopped, done_here, differs, training_here = (p.run_id for p in there.runs)
    record_files = {"result.json": "{}", "curve.csv": "step\n", "run.json": "{}",
                    "diagnostics.json": "{}"}
    not_records = {"model.pt": "w", "checkpoint.pt": "c", "train.log": "log", ".lock": "pid",
                   ".result.json.partial-1": "half"}
    for run_id, files in ((finished, {**record_files, **not_records}),
                          (stopped, {"checkpoint.pt": "c", "train.log": "log"}),
                          (done_here, {"result.json": "SAME", "diagnostics.json": "saved later"}),
                          (differs, {"result.json": "THERE", "diagnostics.json": "other model"}),
                          (training_here, record_files),
                          ("0123456789ab", record_files)):  # not a run of this sweep
        folder = tmp_path / "worktree" / "tiny" / "runs" / run_id
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    runs = tmp_path / "main" / "tiny" / "runs"
    for run_id, text in ((done_here, "SAME"), (differs, "HERE")):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "result.json").write_text(text)
    (runs / training_here).mkdir()
    (runs / training_here / ".lock").write_text(claim.me())  # this test's process: alive

    logged = []
    assert import_finished(here, tmp_path / "worktree", log=logged.append) == [finished, done_here]
    assert sorted(p.name for p in (runs / finished).iterdir()) == sorted(record_files)
    assert not (runs / stopped).exists() and not (runs / "0123456789ab").exists()
    assert (runs / done_here / "diagnostics.json").read_text() == "saved later"
    # another execution's files never join this one's record; a run training here is left alone
    assert (runs / differs / "result.json").read_text() == "HERE"
    assert not (runs / differs / "diagnostics.json").exists()
    assert sorted(p.name for p in (runs / training_here).iterdir()) == [".lock"]
    assert sorted(line.split()[1] for line in logged) == sorted([f"{differs}:", f"{training_here}:"])
    assert import_finished(here, tmp_path / "worktree", log=logged.append) == []  # nothing new

    assert main(["sweep", "collect", "tiny", "--results-dir", str(tmp_path / "main"),
                 "--from", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "does not exist" in error
    assert main(["sweep", "status", "tiny", "--results-dir", str(tmp_path / "main"),
                 "--from", str(tmp_path / "worktree")]) == 2
    assert "--from applies to" in capsys.readouterr().err


def test_status_counts_each_group_and_prices_what_is_left_at_the_measured_rate(tmp_path):
    import json

    from movelab.sweep import format_status

    sweep = write_sweep(tmp_path, "wiki", f"""
[[group]]
name = "grid"
depths = [2]
variants = ["standard", "move x2"]
{TINY_MODEL}
[[group]]
name = "seeds"
depths = [2]
seeds = [1, 2]
variants = ["standard"]
{TINY_MODEL}
""")
    grid = [p for p in sweep.runs if "grid" in p.groups]
    done, left = grid
    sweep.run_dir(done).mkdir(parents=True)
    (sweep.run_dir(done) / "result.json").write_text(json.dumps(
        {"config": {}, "config_hash": done.run_id, "train_flops": 2e12, "wall_seconds": 100.0}))
    text = format_status(sweep)
    assert "at the 2e+10 FLOP/s its finished runs averaged" in text
    assert f"    grid               1 of 2   {left.cost:9.3g} FLOPs left " \
           f"(~{left.cost / 2e10 / 3600:.1f} run-hours)" in text
    seeds = sum(p.cost for p in sweep.runs if "seeds" in p.groups)
    assert f"    seeds              0 of 2   {seeds:9.3g} FLOPs left" in text
    assert text.index("    grid") < text.index("    seeds")  # the file's order of groups
    (sweep.run_dir(done) / "result.json").unlink()
    assert "FLOP/s" not in format_status(sweep) and "run-hours" not in format_status(sweep)


def test_status_warns_when_finished_runs_trained_on_different_builds_of_a_corpus(tmp_path):
    import json

    from movelab.sweep import format_status

    sweep = write_sweep(tmp_path, "wiki", f"""
[[group]]
name = "grid"
depths = [2]
seeds = [0, 1, 2]
variants = ["standard"]
{TINY_MODEL}
""")
    def finish(planned, corpus, build):
        sweep.run_dir(planned).mkdir(parents=True, exist_ok=True)
        (sweep.run_dir(planned) / "result.json").write_text(json.dumps(
            {"config": {}, "config_hash": planned.run_id, "train_flops": 1e12, "wall_seconds": 1.0,
             "data": {"corpus": corpus, "content_hash": build}}))

    first, second, third = sweep.runs
    finish(first, "prose", "a8620958f01fcbda")
    finish(second, "prose", "a8620958f01fcbda")
    finish(third, "wiki", "0123456789abcdef")  # another corpus is not another build
    assert "warning" not in format_status(sweep)
    finish(third, "prose", "5bfc658d2a80ea24")
    assert ("  warning: the finished runs on prose trained on 2 builds of it (data.content_hash "
            "a8620958f01fcbda (2 runs), 5bfc658d2a80ea24 (1 run))") in format_status(sweep)


def test_a_sweep_warns_before_training_on_a_build_its_finished_runs_did_not_use(
        tmp_path, corpus, cache, monkeypatch):
    import json

    from movelab.sweep import _prepare
    from movelab.training.tasks import prepare_data

    monkeypatch.setenv("MOVELAB_CACHE", str(cache))
    sweep = write_sweep(tmp_path, corpus, f"""
[[group]]
name = "seeds"
depths = [2]
seeds = [0, 1]
variants = ["standard"]
{TINY_MODEL}
""")
    finished, todo = sweep.runs
    here = prepare_data(todo.run).describe()

    def finish(build):
        sweep.run_dir(finished).mkdir(parents=True, exist_ok=True)
        (sweep.run_dir(finished) / "result.json").write_text(json.dumps(
            {"config": {}, "config_hash": finished.run_id, "train_flops": 1.0, "wall_seconds": 1.0,
             "data": {"corpus": here["corpus"], "content_hash": build}}))
        logged = []
        _prepare(sweep, [todo], logged.append)
        return logged

    assert finish(here["content_hash"]) == []
    assert finish("0123456789abcdef") == [
        f"  warning: this machine's {here['corpus']} is build {here['content_hash']} "
        "(data.content_hash); the sweep's finished runs on it trained on 0123456789abcdef (1 run): "
        "runs on different builds do not share batches at a seed"]
