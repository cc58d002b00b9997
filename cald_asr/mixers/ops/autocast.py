"""The scans under mixed precision: our CPU scans and the blocked Mamba2 layer run in float32 even inside a
bf16/fp16 autocast region (amp: in training). Their hand-written forward and backward write into
preallocated tensors (torch.mm(..., out=)) that autocast cannot recast, and a recurrence over thousands of
steps in bf16 (8 significant bits) would drift from the float32 one the students are distilled and tested
against. The matrix products around them (the projections of each layer, attention, the feed-forward
blocks) still run in the autocast dtype. mamba-ssm's CUDA kernels take bf16 themselves and do not pass here."""

from __future__ import annotations

import functools

import torch
from torch import Tensor


def _to_float32(v):
    if isinstance(v, Tensor) and v.is_floating_point() and v.dtype in (torch.bfloat16, torch.float16):
        return v.float()
    if isinstance(v, (list, tuple)) and any(isinstance(t, Tensor) for t in v):
        return type(v)(_to_float32(t) for t in v)
    return v


def float32_under_autocast(fn):
    """Run `fn` with autocast off and its half-precision tensor arguments in float32, when called inside an
    autocast region of its first tensor argument's device; otherwise unchanged."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next((a for a in args if isinstance(a, Tensor)), None)
        device = first.device.type if first is not None else "cpu"
        if not torch.is_autocast_enabled(device):
            return fn(*args, **kwargs)
        with torch.autocast(device, enabled=False):
            return fn(*map(_to_float32, args), **{k: _to_float32(v) for k, v in kwargs.items()})

    return wrapper
