"""Chunked SSD scan (Dao & Gu 2024, "Transformers are SSMs", section 6) in pure PyTorch.

Recurrence computed, per head h with scalar decay A[h] < 0:
    S_t = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T      (S: headdim x d_state)
    y_t = S_t C_t + D x_t
The sequence is cut into chunks of length L. Inside a chunk the output is the quadratic
(attention-like) form with a masked decay matrix; across chunks only the (headdim x d_state)
states travel, so the work is linear in T and every heavy step is a batched matmul. The chunk
math, forward and backward, is in ssd_chunks; this file is the autograd entry point.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from cald_asr.mixers.ops.autocast import float32_under_autocast

from .ssd_chunks import chunk_backward, chunk_forward

DEFAULT_CHUNK = 64  # measured fastest on the 2-core CPU for d_state 128 (benchmarks/mixers.py)


@float32_under_autocast
def ssd_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int = DEFAULT_CHUNK,
    D: Optional[Tensor] = None,
    initial_state: Optional[Tensor] = None,
    return_final_state: bool = False,
):
    """x (b,t,h,p); dt (b,t,h) already positive; A (h,); B, C (b,t,g,n) with h % g == 0;
    D (h,) optional; initial_state (b,h,p,n). Returns y (b,t,h,p) [, final state (b,h,p,n)].

    Head h reads group h // (h_total // g), the layout mamba-ssm uses, so the same tensors can be
    handed to its kernel."""
    b, t, h, p = x.shape
    g, n = B.shape[-2:]
    if h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    pad = (-t) % chunk_size
    if pad:
        # zero dt on padding: decay exp(0)=1 and no input, so the final state is unchanged
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    A2 = A.unsqueeze(0).expand(b, h)
    D2 = None if D is None else D.unsqueeze(0).expand(b, h)
    init = None if initial_state is None else initial_state.to(x.dtype)
    if torch.is_grad_enabled() and any(v is not None and v.requires_grad for v in (x, dt, A, B, C, D, init)):
        y, final = _SSDScan.apply(x, dt, A2, B, C, D2, init, chunk_size)
    else:
        y, final, _ = chunk_forward(x, dt, A2, B, C, D2, init, chunk_size, keep=False)
    y = y[:, :t]
    return (y, final) if return_final_state else y


class _SSDScan(torch.autograd.Function):
    """chunk_forward / chunk_backward as one autograd node (tested against the float64 per-step
    recurrence and with gradcheck)."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, init, L):
        y, final, saved = chunk_forward(x, dt, A, B, C, D, init, L)
        ctx.save_for_backward(x, dt, A, B, C, D, y, *saved)
        ctx.L = L
        ctx.has_init = init is not None
        return y, final

    @staticmethod
    def backward(ctx, dy, dfinal):
        x, dt, A, B, C, D, y, *saved = ctx.saved_tensors
        dx, ddt, dA, dB, dC, dD, dinit = chunk_backward(x, dt, A, B, C, D, y, saved, dy.contiguous(), dfinal, ctx.L)
        # A and D were expanded from (h,) over the batch: autograd sums the expand back
        dinit = dinit.view(x.shape[0], *x.shape[2:], B.shape[-1]) if ctx.has_init else None
        return dx, ddt, dA, dB, dC, dD, dinit, None
