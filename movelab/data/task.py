"""The text task as the training loop sees it (movelab.training.task): a corpus's token shards
(movelab.data.shards.TokenData, or the synthetic recall control's RecallData) and bits per byte.

  metric  val_bpb: the summed nats over the target tokens divided by ln 2 times the UTF-8 bytes
          they decode to (docs/design.md); document separators decode to no bytes, so they are
          left out of both sums (as nanochat does)
Runs of a memory path (LaVE, MoVE) also record movelab.diagnostics.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from movelab.data.shards import prepare_text_data
from movelab.training.task import Task


class TextTask(Task):
    name = "text"
    metric, short_metric = "val_bpb", "bpb"
    memory_diagnostics = True

    def prepare(self, run, cache_dir: Path | None = None, progress: bool = False):
        return prepare_text_data(run.train.corpus, run.model.vocab_size, cache_dir,
                                 progress=progress, val_fraction=run.train.val_fraction,
                                 eval_split=run.train.eval_split)

    def counted_nats(self, data, nats: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nats[data.target_bytes(targets) > 0]

    def metric_value(self, data, counted: float, y: torch.Tensor) -> float:
        return counted / (math.log(2) * data.bytes_of(y))
