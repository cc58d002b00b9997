"""Task-agnostic CALD on unlabeled audio: the layer loss alone, on a data dir with only wav.scp.

The converted student matches the teacher's hidden states (the pretrained transformer's, as the teacher
of a `target` strategy given `--finetuned_model <init>`) on any audio at hand, augmented like the rest;
no transcript is read and the task term is 0. The result's mixers then start a task phase
(`asr_train --init_mixers DIR`). Validation: the dev layer loss per frame against the same teacher,
which also selects best/.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from cald_asr.data.augment import augment_dataset
from cald_asr.data.dataset import ASRDataset
from cald_asr.distill.guides import TargetGuide
from cald_asr.distill.losses import layer_loss_sum
from cald_asr.tasks.asr import sample_rate
from cald_asr.tasks.base import DevBatches, Task, dev_outputs


class LayerDistillationTask(Task):
    model_kind = "asr_ctc"
    loss_name = "task"  # always 0: there are no transcripts
    metric = "layer"

    def __init__(self, tokenizer=None):
        self.guide = None

    def datasets(self, train_dir, valid_dir, fields, model, cfg):
        train_set = augment_dataset(ASRDataset(train_dir), cfg["augment"], sample_rate(model), cfg["seed"])
        return train_set, ASRDataset(valid_dir), None

    @classmethod
    def check_options(cls, cfg: Dict[str, Any]) -> None:
        if cfg["strategy"] != "target":
            raise ValueError(
                "task layer_distillation needs a fixed teacher: strategy target, with the pretrained "
                f"model as --finetuned_model (conf/cald/unlabeled.yaml), not strategy {cfg['strategy']}"
            )

    def prepare(self, model, cfg: Dict[str, Any], guide=None) -> None:
        if type(guide) is not TargetGuide:
            raise ValueError("task layer_distillation needs the fixed teacher of strategy target")
        self.guide = guide

    def loss(self, out, batch: Dict[str, Any]) -> torch.Tensor:
        return out.logits.new_zeros(out.logits.shape[0])

    @torch.no_grad()
    def validate(self, model, dataset, batches: DevBatches) -> Dict[str, float]:
        total, frames = 0.0, 0
        for batch, out in dev_outputs(model, dataset, batches, self.collate(dataset)):
            teacher = self.guide.teacher_outputs(batch, 0)
            lsum, n = layer_loss_sum(out.hidden_states, teacher.hidden_states, out.out_lengths)
            total, frames = total + lsum.item(), frames + n
        layer = total / max(frames, 1)
        return {"loss": layer, "layer": layer}

    def scalars(self, res: Dict[str, float]) -> Dict[str, float]:
        return {"valid/layer": res["layer"]}

    def describe(self, res: Dict[str, float]) -> str:
        return f"dev layer loss {res['layer']:.4f}"

    def describe_best(self, best: float) -> str:
        return f"{best:.4f}"

    def summary(self, state: Dict[str, Any]) -> str:
        return f"best dev layer loss {state[f'best_{self.metric}']:.4f}"
