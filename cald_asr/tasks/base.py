"""What the trainer knows of a task: one object per kind of model, called by the training loop at fixed
points (set-up, loss, validation, logging, summary), so that adding a task touches its own module and one
line of the table in cald_asr/tasks/__init__.py, never the loop.

Loss normalisation (cald_asr/train/trainer.py): a step's task term is sum(task loss) / loss_count(norm) and
its logits-KD term sum(KL) / logits_count(norm), with the counts of the whole step; a task says which
counts apply (utterances for a CTC transcript or a class label, tokens for next-token prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple, Union

import torch
from torch import nn

from cald_asr.data.collate import pad_collate, to_device
from cald_asr.distill.guides import model_inputs

# dev batches: lists of dataset indices, or an iterator of collated batches (see dev_outputs)
DevBatches = Union[Sequence[Sequence[int]], Iterator[Dict[str, Any]]]


@dataclass
class StepNorm:
    """The counts a step's loss terms are divided by, over all its micro-batches and ranks."""

    n_utts: int
    n_frames: int  # encoder frames (tokens for text)
    world: int


class Task:
    model_kind = ""  # the model config's `model:` this task trains
    loss_name = ""  # the task term's name in stats, logs and TensorBoard ("train/<loss_name>")
    metric = ""  # the dev error that selects best/ (lower is better)

    def datasets(self, train_dir, valid_dir, fields: Dict[str, Any], model: nn.Module, cfg: Dict[str, Any]):
        """-> (training set, dev set, tokenizer or None) read from the data dirs as this task's model reads them;
        the training set is augmented where the options say so."""
        raise NotImplementedError

    @classmethod
    def check_options(cls, cfg: Dict[str, Any]) -> None:
        """Refuse options this task cannot train with (raise ValueError), before anything is built."""

    def prepare(self, model: nn.Module, cfg: Dict[str, Any], guide=None) -> None:
        """Training-time additions to the model and checks of the options that only some tasks take (`guide`:
        the run's CALD strategy, or None)."""

    def collate(self, dataset) -> Callable[[Sequence[Dict]], Dict[str, Any]]:
        """A dataset may bring its own collate (text); speech datasets use pad_collate."""
        return getattr(dataset, "collate", pad_collate)

    def loss(self, out, batch: Dict[str, Any]) -> torch.Tensor:
        """Per-utterance task loss (B,), summed over each utterance's units; the trainer normalises."""
        raise NotImplementedError

    def loss_sum(self, model: nn.Module, batch: Dict[str, Any]) -> torch.Tensor:
        """The summed task loss of a batch (the trajectory teacher's objective too)."""
        return self.loss(model(*model_inputs(batch)), batch).sum()

    def loss_count(self, norm: StepNorm) -> int:
        return norm.n_utts

    def logits_count(self, norm: StepNorm) -> int:
        return norm.n_frames

    def validate(self, model: nn.Module, dataset, batches: DevBatches) -> Dict[str, float]:
        """The dev results: "loss" (per utterance), the metric, and what else the task reports."""
        raise NotImplementedError

    def warnings(self, res: Dict[str, float]) -> List[str]:
        """What the dev results say is wrong, for the log (e.g. every hypothesis empty)."""
        return []

    def scalars(self, res: Dict[str, float]) -> Dict[str, float]:
        """The dev results logged as TensorBoard scalars ("valid/...")."""
        raise NotImplementedError

    def describe(self, res: Dict[str, float]) -> str:
        """The dev results in the log line of a validation: "dev loss 12.345, dev WER 3.21%"."""
        raise NotImplementedError

    def describe_best(self, best: float) -> str:
        """The best dev error so far, as the log shows it."""
        raise NotImplementedError

    def on_better(self, res: Dict[str, float], state: Dict[str, Any]) -> None:
        """A new best/: keep in the run's state what the summary reports beside the metric."""

    def summary(self, state: Dict[str, Any]) -> str:
        """The result in the run's last log line: "best dev WER 3.21%"."""
        raise NotImplementedError


def dev_outputs(
    model: nn.Module, dataset, batches: DevBatches, collate: Callable
) -> Iterator[Tuple[Dict[str, Any], Any]]:
    """(batch, model output) for each dev batch, on the model's device and dtype, in eval mode without
    gradients; the model is back in training mode afterwards. `batches`: lists of dataset indices, read and
    collated here, or an iterator of collated batches (the trainer's BatchLoader, read by its workers)."""
    model.eval()
    param = next(model.parameters())
    collated = batches if isinstance(batches, Iterator) else (collate([dataset[i] for i in b]) for b in batches)
    try:
        with torch.no_grad():
            for raw in collated:
                batch = to_device(raw, param.device, param.dtype)
                yield batch, model(*model_inputs(batch))
    finally:
        model.train()
