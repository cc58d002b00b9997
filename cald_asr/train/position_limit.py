"""position_limit: clamp a recurrent student's absolute positions past what training showed it."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

POSITION_LIMIT_QUANTILE = 0.99


def apply_position_limit(model: nn.Module, setting, lengths: Sequence[int]) -> Optional[int]:
    """Clamp the encoder's absolute positions for inputs longer than training ever shows it.

    A model fine-tuned on short utterances has only seen the first few hundred rows of a sinusoid
    table; a recurrent student decoding minutes in one pass meets rows it never saw, and its error
    grows with the length (FSDD test_long). The student reads order from its scans, so positions past
    the limit can all be the limit's row. "auto": the 99th percentile of the training set's encoder
    output lengths (positions beyond it are rare in training, so barely learnt). The limit goes into
    the encoder's config, so inference applies the same. Attention encoders are refused: positions
    are their only source of order."""
    if setting is None:
        return None
    from cald_asr.mixers import Mamba, Mamba2

    enc = getattr(model, "encoder", None)
    if enc is None or not hasattr(enc, "set_position_limit"):
        raise ValueError(f"position_limit: the encoder {type(enc).__name__} has no absolute position table to limit")
    if not any(isinstance(m, (Mamba, Mamba2)) for m in enc.modules()):
        raise ValueError(
            "position_limit is for recurrent (Mamba/Mamba2) students: an attention or Linformer "
            "encoder reads order from its positions alone"
        )
    if setting == "auto":
        frames = model.output_lengths(torch.tensor(list(lengths), dtype=torch.long)).float()
        limit = max(1, int(torch.quantile(frames, POSITION_LIMIT_QUANTILE).ceil()))
    elif isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
        limit = setting
    else:
        raise ValueError(f"position_limit must be null, 'auto' or a positive frame count, got {setting!r}")
    enc.set_position_limit(limit)
    return limit
