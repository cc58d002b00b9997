"""Chunked SSD scan (Dao & Gu 2024, "Transformers are SSMs", section 6) in pure PyTorch.

Recurrence computed, per head h with scalar decay A[h] < 0:
    S_t = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T      (S: headdim x d_state)
    y_t = S_t C_t + D x_t
The sequence is cut into chunks of length L. Inside a chunk the output is the quadratic
(attention-like) form with a masked decay matrix; across chunks only the (headdim x d_state)
states travel, so the work is linear in T and every heavy step is a batched matmul.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_CHUNK = 64  # measured fastest on the 2-core CPU for d_state 128 (benchmarks/mixers.py)


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
    r = h // g
    L = chunk_size
    pad = (-t) % L
    xdt = x * dt.unsqueeze(-1)
    a = dt * A
    if pad:
        # zero dt on padding: decay exp(0)=1 and no input, so the final state is unchanged
        xdt = F.pad(xdt, (0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    c = (t + pad) // L

    # Layout (c, b, g, L, ...): chunks outermost so the chunk loop reads contiguous slices and
    # every batched matmul has one uniform batch stride (no hidden copies inside matmul).
    xg = xdt.view(b, c, L, g, r * p).transpose(0, 1).transpose(2, 3).contiguous()  # (c,b,g,L,rp)
    Bg = B.view(b, c, L, g, n).transpose(0, 1).transpose(2, 3).contiguous()  # (c,b,g,L,n)
    Cg = C.view(b, c, L, g, n).transpose(0, 1).transpose(2, 3).contiguous()
    cum = a.view(b, c, L, g, r).permute(1, 0, 3, 4, 2).cumsum(-1)  # (c,b,g,r,L)

    # intra-chunk: y_l = sum_{s<=l} (C_l.B_s) exp(cum_l - cum_s) xdt_s
    seg = cum.unsqueeze(-1) - cum.unsqueeze(-2)  # (c,b,g,r,L,L)
    causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
    decay = seg.masked_fill(~causal, float("-inf")).exp()
    scores = Cg @ Bg.transpose(-1, -2)  # (c,b,g,L,L)
    M = decay * scores.unsqueeze(3)
    xh = xg.view(c, b, g, L, r, p).transpose(3, 4)  # (c,b,g,r,L,p) view
    y_diag = M @ xh  # (c,b,g,r,L,p)

    # chunk states from zero: S_c = sum_s exp(cum_L - cum_s) xdt_s B_s^T
    to_end = (cum[..., -1:] - cum).exp()  # (c,b,g,r,L)
    xs = xh * to_end.unsqueeze(-1)
    states = xs.transpose(-1, -2) @ Bg.unsqueeze(3)  # (c,b,g,r,p,n)

    # pass states between chunks: a loop over chunks (not time steps) keeps it linear in T
    chunk_decay = cum[..., -1].exp()  # (c,b,g,r)
    if initial_state is None:
        init = x.new_zeros(b * h, p * n)
    else:
        init = initial_state.reshape(b * h, p * n).to(x.dtype)
    prev, final = _ChunkStatePassing.apply(
        states.view(c, b * h, p * n), chunk_decay.reshape(c, b * h), init
    )

    # inter-chunk: y_l += exp(cum_l) C_l . S_prev, all heads of a group in one matmul
    y = Cg @ prev.view(c, b, g, r * p, n).transpose(-1, -2)  # (c,b,g,L,rp)
    y = y.view(c, b, g, L, r, p) * cum.exp().transpose(-1, -2).unsqueeze(-1)
    y = y + y_diag.transpose(3, 4)
    y = y.permute(1, 0, 3, 2, 4, 5).reshape(b, c * L, h, p)[:, :t]
    if D is not None:
        y = y + x * D.view(1, 1, h, 1)
    if return_final_state:
        return y, final.view(b, h, p, n)
    return y


class _ChunkStatePassing(torch.autograd.Function):
    """run_{k+1} = run_k * decay_k + states_k over chunks k, for states (c, m, q), decay (c, m),
    init (m, q); returns every run_k (the state entering chunk k) and the final one. Written by
    hand because autograd through a Python loop of slicing ops costs O(chunks^2) memory traffic."""

    @staticmethod
    def forward(ctx, states, decay, init):
        prev = torch.empty_like(states)
        run = init
        for k in range(states.shape[0]):
            prev[k] = run
            run = torch.addcmul(states[k], run, decay[k].unsqueeze(-1))
        ctx.save_for_backward(decay, prev)
        return prev, run

    @staticmethod
    def backward(ctx, g_prev, g_final):
        decay, prev = ctx.saved_tensors
        g_states = torch.empty_like(prev)
        g_run = g_final if g_final is not None else torch.zeros_like(prev[0])
        for k in range(prev.shape[0] - 1, -1, -1):
            g_states[k] = g_run  # d run_{k+1} / d states_k = 1
            g_run = g_run * decay[k].unsqueeze(-1)
            if g_prev is not None:
                g_run = g_run + g_prev[k]
        # d run_{k+1} / d decay_k = run_k = prev_k, in one pass after the loop
        g_decay = (g_states * prev).sum(-1)
        return g_states, g_decay, g_run
