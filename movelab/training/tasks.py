"""The tasks, registered by name: the training loop and the tools that prepare a run's data find
a run's task here (`task_of`), by `RunConfig.task`, which its corpus decides. A new task is one
module implementing movelab.training.task.Task, and its entry in TASKS."""

from __future__ import annotations

from pathlib import Path

from movelab.data.task import TextTask
from movelab.images.task import ImageTask
from movelab.training.task import Task

TASKS: dict[str, Task] = {task.name: task for task in (TextTask(), ImageTask())}


def task_of(run) -> Task:
    """The task of `run` (a RunConfig)."""
    return TASKS[run.task]


def prepare_data(run, cache_dir: Path | None = None, progress: bool = False):
    """The run's data (movelab.training.task describes what it serves), cached."""
    return task_of(run).prepare(run, cache_dir, progress)


def artefacts() -> tuple[str, ...]:
    """Every file a run of any task leaves besides its record."""
    return tuple(name for task in TASKS.values() for name in task.artefacts)
