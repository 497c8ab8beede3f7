"""The task interface: what the training loop needs from a task (text, images, ...).

The loop drives every task through a Task alone; movelab.training.tasks registers the tasks by
name, and a run's task is `RunConfig.task`, which its corpus decides. A task

  prepare         turns the run's config into its data (cached), the object the loop trains on
  metric          names its validation metric: the column of curve.csv and result.json
  counted_nats,   say how that metric comes from the model's per-token losses over the fixed
  metric_value    validation windows (the loop sums, the task says what and divides)
  record_metrics  the metric fields of the result record, from the curve
  after_training  scores the trained model beyond the metric (the image task samples it) and
                  writes its `artefacts` (files besides the record, e.g. samples.png)

The data `prepare` returns serves
  train_batch(rng, batch_size, seq_len) -> (x, y)  drawn with the loop's numpy generator only, so
                                                   a resumed run draws the same batches
  val_windows(seq_len) -> (x, y)                   the fixed validation set
  describe() -> dict                               the record's "data"
  vocab_size, epoch_tokens                         the tokenizer's size, model inputs per epoch
  eval_batch                                       validation windows per forward pass
  task                                             its task's name (the registry's key)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch


class Task(ABC):
    name: str  # RunConfig.task
    metric: str  # the validation metric's column
    short_metric: str  # its name on the progress bar
    artefacts: tuple[str, ...] = ()  # files a finished run of the task leaves besides the record
    # record movelab.diagnostics of the memory (LaVE tables, MoVE bank) at every evaluation
    memory_diagnostics: bool = False

    @abstractmethod
    def prepare(self, run, cache_dir: Path | None = None, progress: bool = False):
        """The data of `run` (a RunConfig), prepared once and cached under cache_dir."""

    def counted_nats(self, data, nats: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Of one batch of validation windows' per-target nats, those the metric counts."""
        return nats

    @abstractmethod
    def metric_value(self, data, counted: float, y: torch.Tensor) -> float:
        """The metric from the counted nats summed over all validation targets `y`."""

    def record_metrics(self, curve: list[dict]) -> dict:
        """The metric fields of the result record: the last evaluation's and the best one."""
        return {self.metric: curve[-1][self.metric],
                f"{self.metric}_best": min(row[self.metric] for row in curve)}

    def after_training(self, data, model, out_dir: Path, seed: int) -> dict:
        """Score the trained `model` beyond the metric, write the artefacts into out_dir, and
        return the record's extra fields (none by default)."""
        return {}

    def fill_caches(self, data) -> None:
        """Fill every cache a run of this data will need besides the data (a sweep does it
        once, before its jobs start)."""
