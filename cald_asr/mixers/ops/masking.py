"""Length handling shared by every mixer: validity masks and reversal within each valid length."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def check_lengths(lengths: Optional[Tensor], batch: int, time: int) -> Optional[Tensor]:
    """Validate a per-utterance length vector against a (batch, time, ...) input."""
    if lengths is None:
        return None
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point:
        raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > time):
        raise ValueError(f"lengths must lie in [0, {time}] (the padded time axis), got {lengths.tolist()}")
    return lengths


def none_if_full(lengths: Optional[Tensor], time: int) -> Optional[Tensor]:
    """None when every row is `time` long: a batch without padding (batch 1 at inference) then
    takes the unmasked path, where reversal is a flip rather than a gather and nothing is masked."""
    if lengths is not None and lengths.numel() and bool((lengths == time).all()):
        return None
    return lengths


def valid_mask(lengths: Optional[Tensor], time: int, device=None) -> Optional[Tensor]:
    """(batch, time) bool mask, True on valid frames; None when every frame is valid."""
    if lengths is None:
        return None
    device = lengths.device if device is None else device
    return torch.arange(time, device=device) < lengths.to(device).unsqueeze(1)


def reverse_index(lengths: Optional[Tensor], batch: int, time: int, device) -> Tensor:
    """(batch, time) gather index that reverses frames [0, len) of each row and leaves padding
    in place; applying it twice is the identity."""
    t = torch.arange(time, device=device).expand(batch, time)
    if lengths is None:
        return t.flip(1)
    n = lengths.to(device).unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t)


def gather_time(x: Tensor, index: Tensor) -> Tensor:
    """x (batch, time, *feat) gathered along time by a (batch, time) index."""
    shape = index.shape + (1,) * (x.dim() - 2)
    return x.gather(1, index.view(shape).expand_as(x))


def reverse_time(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """x (batch, time, *feat) with frames [0, len) of each row reversed, padding left in place.
    The reversal is a permutation that is its own inverse, so its backward is the same gather
    (autograd's gather backward would be a slower scatter_add)."""
    if lengths is None:
        return x.flip(1)
    return _Reverse.apply(x, reverse_index(lengths, x.shape[0], x.shape[1], x.device))


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(index)
        return gather_time(x, index)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        return gather_time(g, index), None
