"""Tasks: what the trainer trains, one module each, in one table keyed by the model config's `model:`.
Adding a task (speech classification, language modelling) is a module with a Task subclass and a line
here; the training loop does not change."""

from __future__ import annotations

from torch import nn

from cald_asr.registry import Registry
from cald_asr.tasks.asr import ASRTask
from cald_asr.tasks.base import StepNorm, Task, dev_outputs
from cald_asr.tasks.text_classification import TextClassificationTask

TASKS: Registry[type] = Registry(
    "task",
    {
        ASRTask.model_kind: ASRTask,
        TextClassificationTask.model_kind: TextClassificationTask,
    },
)

__all__ = ["TASKS", "ASRTask", "StepNorm", "Task", "TextClassificationTask", "dev_outputs", "task_for"]


def task_for(model: nn.Module, tokenizer=None) -> Task:
    """The task of `model` (a model, or DistributedDataParallel around one), by its kind."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return TASKS.lookup(getattr(model, "kind", None), type(model).__name__)(tokenizer)
