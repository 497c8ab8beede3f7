"""The training loop drives a task only through movelab.training.task.Task, found in the registry
movelab.training.tasks: a registered task decides the run's data, its metric (curve.csv and
result.json), what is recorded after training and the files left beside the record."""

import csv
import math

from movelab.config import build_config
from movelab.data.task import TextTask
from movelab.training import tasks
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.loop import train
from movelab.training.task import Task
from test_layering import PACKAGE, movelab_imports


class NatsTask(Task):
    """A new task as a project would add one: the text task's data, scored in nats per token."""

    name = "text"  # stands in for the text task, which the corpus below selects
    metric, short_metric = "nats_per_token", "nats"
    artefacts = ("targets.txt",)

    def prepare(self, run, cache_dir=None, progress=False):
        return TextTask().prepare(run, cache_dir, progress)

    def metric_value(self, data, counted, y):
        return counted / y.numel()

    def after_training(self, data, model, out_dir, seed):
        (out_dir / "targets.txt").write_text(f"{data.epoch_tokens}\n")
        return {"epoch_tokens_seen_by_task": data.epoch_tokens}


def test_a_registered_task_decides_the_metric_the_record_and_the_artefacts(
        tmp_path, monkeypatch, one_thread):
    monkeypatch.setitem(tasks.TASKS, "text", NatsTask())
    run = RunConfig(build_config(depth=1, width=32, heads=1, vocab_size=64, seq_len=16,
                                 value_path="move", slots=2),
                    TrainConfig(corpus="recall:K=2,tokens=20000", tokens=16 * 8 * 6,
                                batch_size=8, evals=2))
    result = train(run, tmp_path, progress=False)
    # the task's metric over every target is the mean validation loss (nats per token)
    assert math.isclose(result["nats_per_token"], result["val_loss"], rel_tol=1e-12)
    assert result["nats_per_token_best"] <= result["nats_per_token"]
    assert "val_bpb" not in result and "diagnostics" not in result  # the text task's, not this one's
    with open(tmp_path / "curve.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[-1] == "nats_per_token" and len(rows) == 2
    assert float(rows[-1]["nats_per_token"]) == result["nats_per_token"]
    assert (tmp_path / "targets.txt").read_text() == f"{result['epoch_tokens_seen_by_task']}\n"


def test_the_loop_imports_no_task_but_the_registry():
    imported = movelab_imports(PACKAGE / "training" / "loop.py")
    assert "movelab.training.tasks" in imported
    assert not {m for m in imported if m.startswith("movelab.images")
                or m in ("movelab.data.task", "movelab.data.shards", "movelab.data")}
