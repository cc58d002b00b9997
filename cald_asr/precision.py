"""Floating-point precision of a training run, and the rule that losses never go below float32.

A run's parameters and inputs share one dtype (`dtype:` in the training config): float32 by default;
float64 for checks that two runs are equal (2 processes against 1, a resumed run against an uninterrupted
one), where rounding sits far below any tolerance (float32 rounding near zero gradients is turned into
whole AdamW steps, so float32 runs can differ by a step on one instruction set and not on another).
Losses are computed in at least float32, whatever the activations' dtype.
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def run_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32; float32 and float64 unchanged."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
