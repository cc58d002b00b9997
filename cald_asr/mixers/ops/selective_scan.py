"""Selective scan of Mamba (Gu & Dao 2023, section 3) in pure PyTorch, without a per-step loop.

Per channel d and state n:  h_t = exp(delta_t A[d,n]) h_{t-1} + delta_t u_t B_t[n],
                             y_t = sum_n C_t[n] h_t[d,n] (+ D[d] u_t).
The decay differs for every (d, n), so the SSD matrix trick does not apply. The sequence is cut
into blocks; inside a block the recurrence is a parallel prefix scan (Hillis-Steele: log2(L)
vectorised steps, only multiplications by decays <= 1, so it is stable for any delta); blocks
hand their end state to the next. Only the block-start states are kept for backward, which
recomputes each block, so memory stays O(T*d + T/L*d*n) instead of O(T*d*n).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from cald_asr.mixers.ops.autocast import float32_under_autocast

# forward keeps every state for backward while they fit in this many elements (256 MB in float32),
# and recomputes them block by block beyond it
SAVE_STATES_MAX = 1 << 26
DEFAULT_BLOCK = 16  # fastest on the 2-core CPU for d_inner 768, d_state 16 (16: 158 ms, 32: 178 ms fwd+bwd at T=1000)


@float32_under_autocast
def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Optional[Tensor] = None,
    initial_state: Optional[Tensor] = None,
    return_final_state: bool = False,
    block_size: int = DEFAULT_BLOCK,
):
    """u, delta (b,t,d) with delta already positive; A (d,n); B, C (b,t,g,n) where channel d reads
    group d // (d // g) (mamba-ssm's grouping); D (d,) optional; initial_state (b,d,n).
    Returns y (b,t,d) [, final state (b,d,n)]."""
    b, t, d = u.shape
    g, n = B.shape[-2:]
    if d % g:
        raise ValueError(f"channels ({d}) must be a multiple of groups ({g})")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    h0 = u.new_zeros(b, d, n) if initial_state is None else initial_state.to(u.dtype)
    y, final = _SelectiveScan.apply(u, delta, A, B, C, h0, block_size)
    if D is not None:
        y = y + u * D
    return (y, final) if return_final_state else y


def _prefix_scan(a: Tensor, h: Tensor) -> Tensor:
    """Along dim 1: h_t <- a_t h_{t-1} + h_t (inclusive); overwrites a and h. Ping-pongs buffers so each
    level is one fused pass (in-place updates would read already-overwritten elements)."""
    L = h.shape[1]
    h2, a2 = torch.empty_like(h), torch.empty_like(a) if L > 2 else None
    k = 1
    while k < L:
        h2[:, :k] = h[:, :k]
        torch.addcmul(h[:, k:], a[:, k:], h[:, :-k], out=h2[:, k:])
        h, h2 = h2, h
        if 2 * k < L:  # the last level's cumulative decays are never read
            a2[:, :k] = a[:, :k]
            torch.mul(a[:, k:], a[:, :-k], out=a2[:, k:])
            a, a2 = a2, a
        k *= 2
    return h


def _suffix_scan(a: Tensor, h: Tensor) -> Tensor:
    """Along dim 1: h_t <- a_t h_{t+1} + h_t (inclusive, right to left)."""
    L = h.shape[1]
    h2, a2 = torch.empty_like(h), torch.empty_like(a) if L > 2 else None
    k = 1
    while k < L:
        h2[:, L - k :] = h[:, L - k :]
        torch.addcmul(h[:, :-k], a[:, :-k], h[:, k:], out=h2[:, :-k])
        h, h2 = h2, h
        if 2 * k < L:
            a2[:, L - k :] = a[:, L - k :]
            torch.mul(a[:, :-k], a[:, k:], out=a2[:, :-k])
            a, a2 = a2, a
        k *= 2
    return h


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, h0, block):
        b, t, d = u.shape
        g, n = B.shape[-2:]
        e = d // g
        Ag = A.view(1, 1, g, e, n)
        y = u.new_empty(b, t, g, e)
        keep = b * (t + 1) * d * n <= SAVE_STATES_MAX
        # kept: every state, hs[:, i] = h_{i-1} (hs[:, 0] = h0); else only each block's first
        hs = u.new_empty(b, t + 1, g, e, n) if keep else None
        starts = []
        state = h0.view(b, g, e, n)
        if keep:
            hs[:, 0] = state
        for t0 in range(0, t, block):
            t1 = min(t0 + block, t)
            dl = delta[:, t0:t1].view(b, -1, g, e, 1)
            a = torch.exp(dl * Ag)
            h = (dl * u[:, t0:t1].view(b, -1, g, e, 1)) * B[:, t0:t1].unsqueeze(3)
            h[:, 0] += a[:, 0] * state  # seeding the first step carries the state through the scan
            if not keep:
                starts.append(state)
            h = _prefix_scan(a, h)
            y[:, t0:t1] = (h @ C[:, t0:t1].unsqueeze(-1)).squeeze(-1)
            if keep:
                hs[:, t0 + 1 : t1 + 1] = h
            state = h[:, -1].clone()
        ctx.block = block
        saved = hs if keep else (torch.stack(starts) if starts else h0.view(1, b, g, e, n))
        ctx.keep = keep
        ctx.save_for_backward(u, delta, A, B, C, saved)
        return y.view(b, t, d), state.reshape(b, d, n).clone()

    @staticmethod
    def backward(ctx, gy, g_final):
        u, delta, A, B, C, saved = ctx.saved_tensors
        block = ctx.block
        b, t, d = u.shape
        g, n = B.shape[-2:]
        e = d // g
        Ag = A.view(1, 1, g, e, n)
        gu = torch.empty_like(u).view(b, t, g, e)
        gdelta = torch.empty_like(delta).view(b, t, g, e)
        gB = torch.empty_like(B)
        gC = torch.empty_like(C)
        gA = torch.zeros_like(A).view(g, e, n)
        gy = gy.contiguous().view(b, t, g, e)
        # carry = d loss / d h_{t1-1} arriving from later blocks
        carry = g_final.view(b, g, e, n).clone() if g_final is not None else u.new_zeros(b, g, e, n)
        for i in range((t + block - 1) // block - 1, -1, -1):
            t0, t1 = i * block, min((i + 1) * block, t)
            dl = delta[:, t0:t1].view(b, -1, g, e, 1)
            ul = u[:, t0:t1].view(b, -1, g, e, 1)
            Bl, Cl = B[:, t0:t1].unsqueeze(3), C[:, t0:t1]
            a0 = torch.exp(dl * Ag)
            x = dl * ul  # (b,l,g,e,1)
            if ctx.keep:
                h_prev, h = saved[:, t0:t1], saved[:, t0 + 1 : t1 + 1]
            else:
                state = saved[i]
                h = x * Bl
                h[:, 0] += a0[:, 0] * state
                h = _prefix_scan(a0.clone(), h)  # the scan reuses its inputs as buffers
                h_prev = torch.cat([state.unsqueeze(1), h[:, :-1]], dim=1)
            # adjoint lam_t = gy_t C_t + a_{t+1} lam_{t+1}
            gyl = gy[:, t0:t1].unsqueeze(-1)  # (b,l,g,e,1)
            lam = gyl * Cl.unsqueeze(3)
            lam[:, -1] += carry
            ar = torch.roll(a0, -1, 1)  # a_{t+1}; the wrapped last entry is never read by the scan
            lam = _suffix_scan(ar, lam)
            gC[:, t0:t1] = (gyl.transpose(-1, -2) @ h).squeeze(-2)
            gB[:, t0:t1] = (x.transpose(-1, -2) @ lam).squeeze(-2)
            gx = (lam @ Bl.transpose(-1, -2)).squeeze(-1)  # (b,l,g,e)
            # d loss / d log-decay = lam_t * a_t * h_{t-1}
            gla = lam * a0 * h_prev
            gA += (gla * dl).sum((0, 1))
            dls = dl.squeeze(-1)
            gdelta[:, t0:t1] = (gla * Ag).sum(-1) + gx * ul.squeeze(-1)
            gu[:, t0:t1] = gx * dls
            carry = a0[:, 0] * lam[:, 0]
        gh0 = carry.reshape(b, d, n)
        return gu.view(b, t, d), gdelta.view(b, t, d), gA.view(d, n), gB, gC, gh0, None
