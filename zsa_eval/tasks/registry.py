"""The tasks by name: a dataset config's `task` key, and a run's metrics.json `task`, pick one of these."""

from __future__ import annotations

from zsa_eval.errors import UserError
from zsa_eval.tasks import Task, classification, retrieval, tagging

TASKS: dict[str, Task] = {module.TASK.name: module.TASK for module in (classification, tagging, retrieval)}


def task_named(name: str) -> Task:
    """The task of a dataset config's `task` key (or a run's metrics.json), in one line when unknown."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return TASKS[name]
