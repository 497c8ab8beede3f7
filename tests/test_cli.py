"""The command line: numbers, and bad input failing cleanly."""

import json
import subprocess
import sys

import pytest

from movelab.accounting import analytic_costs
from movelab.cli import main
from movelab.config import build_config

REQUIRED_KEYS = {"params", "params_total", "params_active", "flops_per_token_train",
                 "flops_per_token_forward", "bytes_gathered_per_token"}


def run_json(capsys, *argv):
    assert main(["flops", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_flops_json_gives_spec_numbers(capsys):
    out = run_json(capsys, "--depth", "6", "--value-path", "move", "--density", "2")
    assert REQUIRED_KEYS <= set(out)
    d, L, H, V, T, M = 96, 6, 3, 4096, 256, 6
    active = L * 12 * d * d + L * d * H * (M + 1) + d * V
    assert out["params_active"] == active
    assert out["flops_per_token_train"] == 6 * active + 12 * L * d * T
    assert out["flops_per_token_forward"] * 3 == out["flops_per_token_train"]
    assert out["params"]["move_bank"] == V * M * d
    assert out["bytes_gathered_per_token"] == M * d * 4
    assert out["params_total"] == sum(out["params"].values())


def test_explicit_overrides_and_presets(capsys):
    out = run_json(capsys, "--preset", "gpu-d20", "--value-path", "lave", "--density", "2")
    assert out["config"] | {} == build_config("gpu-d20", value_path="lave", density=2).to_dict()
    assert out["config"]["width"] == 1280 and out["config"]["n_heads"] == 10
    out = run_json(capsys, "--preset", "cpu-d8", "--depth", "4", "--width", "96", "--heads", "3",
                   "--vocab-size", "1000", "--seq-len", "64", "--value-path", "move", "--slots", "5")
    cfg = build_config(depth=4, width=96, heads=3, vocab_size=1000, seq_len=64,
                       value_path="move", slots=5)
    assert out["params_total"] == analytic_costs(cfg).params_total
    assert out["config"]["slots"] == 5 and out["config"]["density"] == 2.5


def test_ladder_mode_lists_every_preset_path_and_density(capsys):
    records = run_json(capsys, "--ladder", "cpu")
    presets = {r["preset"] for r in records}
    assert presets == {"cpu-d2", "cpu-d4", "cpu-d6", "cpu-d8", "cpu-d10", "cpu-d12"}
    assert len(records) == 6 * 9
    main(["flops", "--ladder", "gpu"])
    table = capsys.readouterr().out
    assert "gpu-d32" in table and "move x32" in table and "lave x2" in table


@pytest.mark.parametrize("argv,message", [
    (["--width", "100", "--heads", "3"], "must divide width"),
    (["--value-path", "move", "--slots", "-2"], "--slots must be a positive"),
    (["--value-path", "move", "--depth", "3", "--width", "96"], "not a whole number"),
    (["--depth", "3"], "not a multiple of the cpu ladder's head size"),
    (["--value-path", "move", "--depth", "4", "--density", "0.75"], "not a whole number"),
    (["--value-path", "lave", "--density", "3"], "LaVE density must be 1"),
    (["--value-path", "standard", "--slots", "4"], "not standard"),
    (["--depth", "0"], "depth must be a positive"),
])
def test_impossible_configs_fail_with_one_line_and_status_2(capsys, argv, message):
    assert main(["flops", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["flops", "--preset", "cpu-d3"], ["flops", "--value-path", "mla"],
                                  ["flops", "--bogus"]])
def test_unknown_choices_exit_2_without_traceback(argv):
    proc = subprocess.run([sys.executable, "-m", "movelab", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr
