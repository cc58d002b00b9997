"""Speech recognition: an ASRCTCModel trained with CTC, validated by dev CTC loss and greedy-CTC WER."""

from __future__ import annotations

from typing import Any, Dict, List

import jiwer
import torch

from cald_asr.data.augment import augment_dataset
from cald_asr.data.dataset import ASRDataset
from cald_asr.decode.ctc_greedy import ctc_greedy
from cald_asr.frontend.specaug import SpecAugment
from cald_asr.models.asr_ctc import ASRCTCModel
from cald_asr.tasks.base import DevBatches, Task, dev_outputs
from cald_asr.text import TokenList, build_tokenizer


class ASRTask(Task):
    model_kind = "asr_ctc"
    loss_name = "ctc"
    metric = "wer"

    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer  # decodes the dev hypotheses for the WER

    def datasets(self, train_dir, valid_dir, fields, model, cfg):
        tokenizer = build_tokenizer(
            fields.get("token_type", "char"), TokenList(fields["token_list"]), fields.get("bpemodel")
        )
        limit = cfg["max_unk_share"]
        train_set = ASRDataset(train_dir, tokenizer, max_unk_share=limit)
        train_set = augment_dataset(train_set, cfg["augment"], sample_rate(model), cfg["seed"])
        return train_set, ASRDataset(valid_dir, tokenizer, max_unk_share=limit), tokenizer

    def prepare(self, model, cfg: Dict[str, Any], guide=None) -> None:
        model.specaug = SpecAugment(**cfg["specaug_conf"]) if cfg["specaug"] else None
        teacher = getattr(guide, "teacher", None)
        if teacher is not None and cfg["teacher_mode"] == "train":
            # as the authors' code runs it: the teacher in train mode draws its own SpecAugment masks (and dropout)
            teacher.specaug = SpecAugment(**cfg["specaug_conf"]) if cfg["specaug"] else None

    def loss(self, out, batch: Dict[str, Any]) -> torch.Tensor:
        return ASRCTCModel.ctc_loss(out, batch["text"], batch["text_lengths"])

    @torch.no_grad()
    def validate(self, model, dataset, batches: DevBatches) -> Dict[str, float]:
        total, n, refs, hyps = 0.0, 0, [], []
        for batch, out in dev_outputs(model, dataset, batches, self.collate(dataset)):
            total += self.loss(out, batch).sum().item()
            n += len(batch["utt_ids"])
            for utt, ids in zip(batch["utt_ids"], ctc_greedy(out.logits, out.out_lengths)):
                refs.append(dataset.texts[utt])
                hyps.append(self.tokenizer.decode(ids))
        empty = sum(1 for h in hyps if not h.strip())
        return {"loss": total / max(n, 1), "wer": 100.0 * jiwer.wer(refs, hyps), "empty_hyps": empty, "n_dev": n}

    def warnings(self, res: Dict[str, float]) -> List[str]:
        if res["n_dev"] and res["empty_hyps"] == res["n_dev"]:
            return [
                f"every dev hypothesis is empty ({res['n_dev']} utterances): the model outputs only blanks, as "
                "early in CTC training; if it lasts, the run is too short for its warm-up and lr, or the lr is "
                "too high (dev loss falling while WER stays 100 % means it is still learning)"
            ]
        return []

    def scalars(self, res: Dict[str, float]) -> Dict[str, float]:
        return {"valid/loss": res["loss"], "valid/wer": res["wer"]}

    def describe(self, res: Dict[str, float]) -> str:
        return f"dev loss {res['loss']:.3f}, dev WER {res['wer']:.2f}%"

    def describe_best(self, best: float) -> str:
        return f"{best:.2f}%"

    def summary(self, state: Dict[str, Any]) -> str:
        return f"best dev WER {state[f'best_{self.metric}']:.2f}%"


def sample_rate(model) -> int:
    """The rate of the waveforms the model reads: its front end's, else 16 kHz (Wav2Vec2, ESPnet front ends)."""
    fe = getattr(model, "frontend", None)
    if fe is not None:
        return int(fe.sample_rate)
    enc_fe = getattr(getattr(model, "encoder", None), "frontend", None)
    return int(getattr(enc_fe, "fs", 16000)) if enc_fe is not None else 16000
