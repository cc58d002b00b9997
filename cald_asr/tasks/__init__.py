"""Tasks: what the trainer trains, one module each, in one table. A model's own task is keyed by its kind
(the model config's `model:`); the training option `task:` names another one for the same model (e.g.
layer_distillation, CALD on unlabeled audio). Adding a task (speech classification, language modelling) is a
module with a Task subclass and a line here; the training loop does not change."""

from __future__ import annotations

from typing import Optional

from torch import nn

from cald_asr.registry import Registry
from cald_asr.tasks.asr import ASRTask
from cald_asr.tasks.base import StepNorm, Task, dev_outputs
from cald_asr.tasks.layer_distillation import LayerDistillationTask
from cald_asr.tasks.text_classification import TextClassificationTask

TASKS: Registry[type] = Registry(
    "task",
    {
        ASRTask.model_kind: ASRTask,
        TextClassificationTask.model_kind: TextClassificationTask,
        "layer_distillation": LayerDistillationTask,
    },
)

__all__ = [
    "TASKS",
    "ASRTask",
    "LayerDistillationTask",
    "StepNorm",
    "Task",
    "TextClassificationTask",
    "dev_outputs",
    "task_for",
]


def task_for(model: nn.Module, tokenizer=None, name: Optional[str] = None) -> Task:
    """The task `name`, or `model`'s own (a model, or DistributedDataParallel around one) by its kind."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    task = TASKS.lookup(name or getattr(model, "kind", None), "task" if name else type(model).__name__)
    if task.model_kind != getattr(model, "kind", None):
        raise ValueError(f"task {name} trains {task.model_kind} models, not {getattr(model, 'kind', None)}")
    return task(tokenizer)
