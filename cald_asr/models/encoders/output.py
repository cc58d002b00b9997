"""What every encoder returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch


@dataclass
class EncoderOutput:
    """Encoder result for a padded batch.

    out: (B, T', D) final encoder output, zero on padded frames.
    out_lengths: (B,) valid frames per utterance in ``out``.
    hidden_states: one (B, T', D) tensor per layer, the targets of CALD's layerwise loss: entry i is
        layer i's output after its feed-forward block (residual added); the last entry is taken after
        the encoder's final norm, so ``hidden_states[-1]`` is ``out``.  Padded frames are zero.
    """

    out: torch.Tensor
    out_lengths: torch.Tensor
    hidden_states: List[torch.Tensor] = field(default_factory=list)
