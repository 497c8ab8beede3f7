"""The paper's GPU configuration (results/gpu-paper): its budget is nanochat's rule over the
parameters it names, its committed plan is what `movelab sweep plan` prints today, and the cluster
commands of the README parse and launch what they say. All on the CPU: nothing is trained."""

import json
import re
import shlex
from pathlib import Path

import pytest

from movelab.accounting import analytic_costs
from movelab.cli import build_parser
from movelab.config import build_config
from movelab.plan import H200, plan_sweep
from movelab.sweep import JobOptions, _slurm_parameters, load_sweep, train_command
from movelab.training.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "results" / "gpu-paper"


@pytest.fixture
def sweep():
    return load_sweep("gpu-paper", ROOT / "results")


@pytest.fixture
def unprepared(monkeypatch):
    """FineWeb-Edu is not prepared in a test (it needs the hub): epochs stay unknown."""
    from movelab.data import DataError
    from movelab.training import tasks

    def prepare_data(run, *args, **kw):
        raise DataError("streaming fineweb-edu needs the datasets package: pip install datasets "
                        "pyarrow, or pass fineweb-edu:DIR with local parquet shards")
    monkeypatch.setattr(tasks, "prepare_data", prepare_data)


def test_the_budget_is_nanochats_rule_over_transformer_matrices_and_head(sweep):
    assert {p.run.train.corpus for p in sweep.runs} == {"fineweb-edu"}
    assert {p.run.train.batch_size * p.run.model.seq_len for p in sweep.runs} == {2**19}
    for planned in sweep.runs:
        standard = analytic_costs(build_config(f"gpu-d{planned.run.model.depth}"))
        scaling_params = (standard.params["transformer_matrices"]
                          + standard.params["output_head"])
        assert scaling_params == standard.params_active
        assert planned.run.train.tokens == round(12 * scaling_params / 2**19) * 2**19
    cells = {(p.run.model.depth, p.variant) for p in sweep.runs}
    assert cells == {(d, v) for d in (12, 20) for v in ("standard", "lave x1", "lave x2",
                                                       "move x1", "move x4", "move x8")}
    seeds = {(p.run.model.depth, p.variant): set() for p in sweep.runs}
    for p in sweep.runs:
        seeds[p.run.model.depth, p.variant].add(p.run.train.seed)
    assert all(seeds[12, v] == {0, 1, 2} for _, v in cells)
    assert seeds[20, "standard"] == seeds[20, "move x4"] == {0, 1, 2}


def test_the_committed_plan_is_what_sweep_plan_prints(sweep, unprepared):
    committed = json.loads((PAPER / "plan.json").read_text())
    fresh = plan_sweep(sweep, profile=H200, ranks=8, jobs=1, log=lambda line: None).to_dict()
    assert fresh == committed
    assert committed["totals"]["device_hours"] == pytest.approx(
        8 * sum(r["wall_seconds"] for r in committed["runs"]) / 3600)
    text = (PAPER / "plan.txt").read_text()
    assert text.startswith("$ movelab sweep plan gpu-paper --profile h200 --gpus-per-job 8")
    assert f"{committed['totals']['device_hours']:.0f} device-hours" in text


def test_every_planned_config_reruns_as_its_sweep_run(sweep):
    """The README's one-node loop writes each run's run.json from plan.json's config."""
    committed = json.loads((PAPER / "plan.json").read_text())
    assert {RunConfig.from_dict(r["config"]).hash() for r in committed["runs"]} == \
        {r["run_id"] for r in committed["runs"]} == {p.run_id for p in sweep.runs}


def readme_commands():
    """The shell lines of the README's GPU cluster section that start with movelab or torchrun."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## On a GPU cluster", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].split(" > ", 1)[0].strip()  # no comment, no redirect
            if line.startswith(("movelab ", "torchrun ")):
                lines.append(line)
    return lines


def test_the_readme_cluster_commands_parse():
    commands = readme_commands()
    assert any(c.startswith("movelab sweep run gpu-paper --executor slurm") for c in commands)
    assert any(c.startswith("torchrun ") for c in commands)
    parser = build_parser()
    for command in commands:  # argparse exits (SystemExit) on a flag it does not know
        words = shlex.split(command)
        parser.parse_args(words[words.index("movelab") + 1:] if words[0] == "torchrun"
                          else words[1:])


def test_slurm_jobs_of_the_readme_ask_for_one_node_of_8_gpus_under_torchrun(sweep, tmp_path):
    (command,) = [c for c in readme_commands() if "--executor slurm" in c]
    args = build_parser().parse_args(shlex.split(command)[1:])
    options = JobOptions(args.partition, args.gpus_per_job, args.cpus_per_job, args.time_limit)
    parameters = _slurm_parameters(sweep, options)
    assert parameters["nodes"] == 1 and parameters["gpus_per_node"] == 8
    assert parameters["timeout_min"] == args.time_limit
    line = train_command(tmp_path, args.cpus_per_job // args.gpus_per_job, args.gpus_per_job)
    assert line[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8",
                         "-m"]
    assert line[line.index("--from") + 1] == str(tmp_path / "run.json")
