"""What the task models return: the interface CALD's losses read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch


@dataclass
class ModelOutput:
    """logits: (B, T', V) per-frame CTC logits, or (B, C) class logits for a classifier.
    out_lengths: (B,) valid encoder frames (tokens for text).
    hidden_states: the encoder's per-layer outputs (see EncoderOutput), what L_layer compares."""

    logits: torch.Tensor
    out_lengths: torch.Tensor
    hidden_states: List[torch.Tensor] = field(default_factory=list)
