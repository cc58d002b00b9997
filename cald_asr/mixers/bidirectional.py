"""Bidirectional wrapper for causal mixers: `fwd` reads x, `bwd` reads each sequence reversed within
its own valid length (padding stays at the end, so a causal mixer never sees it before valid
frames); the backward output is un-reversed and the two are summed; padding is zero on output."""

from __future__ import annotations

from typing import Optional

import torch.nn as nn
from torch import Tensor

from .mamba import Mamba
from .mamba2 import Mamba2
from .ops.directions import mamba2_directions, mamba_directions
from .ops.masking import check_lengths, gather_time, reverse_index, valid_mask

# mixer type -> function running several same-shaped mixers of that type in one pass
_FUSED = {Mamba2: mamba2_directions, Mamba: mamba_directions}


class Bidirectional(nn.Module):
    """fwd(x) + un-reversed bwd(reversed x), any two mixers; two Mamba2 or two Mamba mixers of one
    config_key run as one fused pass unless fused=False."""

    def __init__(self, fwd: nn.Module, bwd: nn.Module, fused: bool = True):
        super().__init__()
        self.fwd, self.bwd, self.fused = fwd, bwd, fused

    def _fused_fn(self):
        kind = type(self.fwd)
        if not self.fused or type(self.bwd) is not kind or kind not in _FUSED:
            return None
        if self.fwd.config_key() != self.bwd.config_key():
            return None
        return _FUSED[kind]

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        fn = self._fused_fn()
        if fn is not None:
            return fn([self.fwd, self.bwd], [False, True], x, lengths)
        b, T, _ = x.shape
        lengths = check_lengths(lengths, b, T)
        index = reverse_index(lengths, b, T, x.device)
        y = self.fwd(x, lengths) + gather_time(self.bwd(gather_time(x, index), lengths), index)
        mask = valid_mask(lengths, T, x.device)
        return y if mask is None else y.masked_fill(~mask.unsqueeze(-1), 0.0)
