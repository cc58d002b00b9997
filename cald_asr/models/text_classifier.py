"""Encoder + pooled classification head: the model of the text recipes (SST-2, movie reviews)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from cald_asr.models.attention import length_mask
from cald_asr.models.output import ModelOutput
from cald_asr.precision import upcast

POOLINGS = ("mean", "first")


class TextClassifier(nn.Module):
    """token ids (B, L) + lengths -> class logits (B, C). pooling 'first' reads the [CLS]/<s> token;
    'mean' averages the valid tokens, which does not depend on one position surviving conversion."""

    kind = "text_cls"  # the model config's `model:` (its task: cald_asr.tasks)

    def __init__(self, encoder: nn.Module, num_classes: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.d_model, num_classes)
        self.num_classes = num_classes

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden states per input: one per token (the trainer normalises the layer loss by them)."""
        return lengths

    def forward(self, input_ids: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> ModelOutput:
        if lengths is None:
            lengths = torch.full((input_ids.shape[0],), input_ids.shape[1], dtype=torch.long, device=input_ids.device)
        enc = self.encoder(input_ids, lengths)
        if self.pooling == "first":
            pooled = enc.out[:, 0]
        else:
            mask = length_mask(enc.out_lengths, enc.out.shape[1]).unsqueeze(-1).to(enc.out.dtype)
            pooled = (enc.out * mask).sum(1) / enc.out_lengths.clamp(min=1).unsqueeze(-1).to(enc.out.dtype)
        return ModelOutput(self.classifier(self.dropout(pooled)), enc.out_lengths, enc.hidden_states)

    @staticmethod
    def ce_loss(out: ModelOutput, labels: torch.Tensor) -> torch.Tensor:
        """Per-example cross-entropy (B,); the caller sums and normalises."""
        return F.cross_entropy(upcast(out.logits), labels, reduction="none")
