"""Floating-point precision of a training run, and the rule that losses never go below float32.

A run's parameters and inputs share one dtype (`dtype:` in the training config): float32 by default;
float64 for checks that two runs are equal (2 processes against 1, a resumed run against an uninterrupted
one), where rounding sits far below any tolerance (float32 rounding near zero gradients is turned into
whole AdamW steps, so float32 runs can differ by a step on one instruction set and not on another).
Losses are computed in at least float32, whatever the activations' dtype.

Mixed precision (`amp: bf16 | fp16`, default none): the forward passes (student and teacher) run under
torch.autocast in that dtype while the parameters, gradients and optimiser state stay in the run's dtype;
losses are upcast to float32 (`upcast`). fp16's narrow range needs loss scaling: a GradScaler whose scale
halves on an overflow (that step is skipped) and grows again after 2000 clean steps; bf16 has float32's
range and needs none. bf16 autocast runs on CPU as well as CUDA.
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
AMP_MODES = ("none", *AMP_DTYPES)


def run_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32; float32 and float64 unchanged."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def check_amp(amp: str, dtype: torch.dtype) -> None:
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp != "none" and dtype != torch.float32:
        raise ValueError(f"amp {amp} mixes with float32 parameters; dtype is {dtype} (use amp: none)")


def autocast(amp: str, device: torch.device):
    """The context of a mixed-precision forward pass (a no-op for amp none)."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16; disabled (every call a pass-through) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")
