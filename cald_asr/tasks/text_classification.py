"""Text classification: a TextClassifier trained with cross-entropy, validated by accuracy and macro-F1
(best/ has the lowest dev error, 100 - accuracy). Its logits are one distribution per utterance, so the
logits-KD term is averaged over utterances."""

from __future__ import annotations

import math
from typing import Any, Dict

import torch

from cald_asr.data.augment import active as augment_active
from cald_asr.data.text_dataset import TextDataset
from cald_asr.models.text_classifier import TextClassifier
from cald_asr.scoring.accuracy import accuracy, macro_f1
from cald_asr.tasks.base import DevBatches, StepNorm, Task, dev_outputs


class TextClassificationTask(Task):
    model_kind = "text_cls"
    loss_name = "ce"
    metric = "err"

    def __init__(self, tokenizer=None):
        pass  # the dev labels need no decoding

    def datasets(self, train_dir, valid_dir, fields, model, cfg):
        if augment_active(cfg.get("augment")):
            raise ValueError("augment applies to speech (waveform) models only; drop the augment block for text")
        max_length = int(getattr(model.encoder, "max_length", 512))
        return (
            TextDataset(train_dir, fields["labels"], max_length=max_length),
            TextDataset(valid_dir, fields["labels"], max_length=max_length),
            None,
        )

    def prepare(self, model, cfg: Dict[str, Any], guide=None) -> None:
        if cfg["specaug"]:
            raise ValueError("specaug applies to speech models only; set specaug: false for text")

    def loss(self, out, batch: Dict[str, Any]) -> torch.Tensor:
        return TextClassifier.ce_loss(out, batch["labels"])

    def logits_count(self, norm: StepNorm) -> int:
        return norm.n_utts

    @torch.no_grad()
    def validate(self, model, dataset, batches: DevBatches) -> Dict[str, float]:
        """Dev cross-entropy per utterance, accuracy, macro-F1 and error (100 - accuracy), in %."""
        total, refs, hyps = 0.0, [], []
        for batch, out in dev_outputs(model, dataset, batches, self.collate(dataset)):
            total += self.loss(out, batch).sum().item()
            refs += batch["labels"].tolist()
            hyps += out.logits.argmax(-1).tolist()
        acc = accuracy(refs, hyps)
        return {"loss": total / max(len(refs), 1), "acc": acc, "macro_f1": macro_f1(refs, hyps), "err": 100.0 - acc}

    def scalars(self, res: Dict[str, float]) -> Dict[str, float]:
        return {"valid/loss": res["loss"], "valid/acc": res["acc"], "valid/macro_f1": res["macro_f1"]}

    def describe(self, res: Dict[str, float]) -> str:
        return f"dev loss {res['loss']:.3f}, dev accuracy {res['acc']:.2f}%, macro-F1 {res['macro_f1']:.2f}%"

    def describe_best(self, best: float) -> str:
        return f"{100 - best:.2f}%"

    def on_better(self, res: Dict[str, float], state: Dict[str, Any]) -> None:
        state["best_macro_f1"] = res["macro_f1"]

    def summary(self, state: Dict[str, Any]) -> str:
        return (
            f"best dev accuracy {100 - state[f'best_{self.metric}']:.2f}% "
            f"(macro-F1 {state.get('best_macro_f1', math.nan):.2f}%)"
        )
