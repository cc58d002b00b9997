"""Forward and backward of the chunked SSD scan on one stretch of sequence, written out by hand.

Dao & Gu 2024 ("Transformers are SSMs", section 6), per sequence s, head h (scalar decay a_t =
dt_t A_h <= 0), chunk of length L with cum_l = a_1 + ... + a_l:
    y_diag = (G o Lmat_h) @ Xd_h          G = C B^T, Lmat_h[l, s] = exp(cum_l - cum_s) for s <= l
    prev_{j+1} = exp(cum_L^(j)) prev_j + (Xd_h o w)^T @ B     w_s = exp(cum_L - cum_s)
    y = y_diag + exp(cum_l) C_l prev_h^T + D x                with Xd = dt * x,
prev_j being the state entering chunk j. Every exponent is a sum of a <= 0 over a stretch inside
one chunk, so nothing overflows.

Why by hand: autograd would store and re-read every small op's result and run one gradient
formula per op. Here backward reads what forward kept (inputs, output, chunk-entry states, the
(L x L) matrices, dt * x in two layouts), several gradient terms share one pass (see the notes on
d cum), the contractions are batched matmuls over (chunk x sequence [x head]) whose operands BLAS
reads in place, and the chunk-state recurrence and its adjoint run one chunk at a time so that
each (headdim x d_state) state is made, used and passed on while it is in cache.

Shapes: x (S,T,H,P), dt (S,T,H) > 0, A (S,H) < 0, B/C (S,T,G,N), D (S,H) or None, state (S,H,P,N);
T is a multiple of L; head h reads group h // (H // G)."""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor


def _groups(t: Tensor, Q: int, L: int) -> Tensor:
    """(S,T,G,N) -> (Q,L,G,N) without a copy when the layout allows it."""
    return t.reshape(Q, L, *t.shape[-2:])


def _decay_matrix(cum: Tensor) -> Tensor:
    """cum (Q,L,H) -> (Q,H,L,L) with exp(cum_l - cum_s) on and below the diagonal, 0 above.
    Above the diagonal the exponent is >= 0 and may overflow to inf; tril_ overwrites it."""
    ch = cum.transpose(1, 2).contiguous()
    return (ch.unsqueeze(-1) - ch.unsqueeze(-2)).exp_().tril_()


def _gbmm(a: Tensor, b: Tensor, tb: bool = False) -> Tensor:
    """Per group g: a[:, :, g] @ b[:, g] (or its transpose when tb), stacked along dim 1.
    a (n,R,G,K), b (n,G,K,Co) or (n,G,Co,K) when tb; a view of the one product for a single group."""
    G = a.shape[2]
    prods = [torch.bmm(a[:, :, g], b[:, g].transpose(1, 2) if tb else b[:, g]) for g in range(G)]
    return prods[0].unsqueeze(1) if G == 1 else torch.stack(prods, 1)


def _recurrence(
    out: Tensor, decay: Tensor, h0: Optional[Tensor], A: Tensor, Bm: Tensor, r: int, P: int, reverse: bool = False
) -> Tensor:
    """Chunk-state recurrence, one chunk at a time: h_next = decay_j h_j + A_j^T @ B_j, with out
    (c,S,G,rP,N), decay (S,c,G,r,1,1), A (c,S,L,G,rP), Bm (c,S,L,G,N).
    Forward: out[j] = h_j, the state entering chunk j, from h_0 = h0 (zero if None); returns h_c.
    Reverse (the adjoint): out[j] = g_{j+1}, from g_c = h0; g_j = decay_j g_{j+1} + A_j^T @ B_j;
    returns g_0. Every per-chunk view is made before the loop (indexing costs more than the
    work here): the loop body is one multiply and one matmul per group."""
    c, S, G, _, N = out.shape
    order = list(range(c - 1, -1, -1)) if reverse else list(range(c))
    if h0 is None:
        out[order[0]].zero_()
    else:
        out[order[0]].copy_(h0.reshape(S, G, r * P, N))
    last = out.new_empty(S, G, r * P, N)  # written by the loop's final step
    src = out.unbind(0)
    dst = [src[j - 1] if reverse else src[j + 1] for j in order[:-1]] + [last]
    src6 = [t.view(S, G, r, P, N) for t in src]
    dst6 = [t.view(S, G, r, P, N) for t in dst]
    dstg = [[t[:, g] for t in dst] for g in range(G)]  # (S, rP, N), contiguous for one group
    dec = decay.unbind(1)
    Ag = [A[:, :, :, g].transpose(-1, -2).unbind(0) for g in range(G)]  # per chunk (S, rP, L)
    Bg = [Bm[:, :, :, g].unbind(0) for g in range(G)]  # per chunk (S, L, N)
    for i, j in enumerate(order):
        torch.mul(src6[j], dec[j], out=dst6[i])
        for g in range(G):
            dstg[g][i].baddbmm_(Ag[g][j], Bg[g][j])
    return last


def _time_major(t: Tensor, Q: int, L: int, H: int, P: int) -> Tensor:
    """(Q,G,L,r*P) per-group result -> (Q,L,H,P); a view for a single group."""
    if t.shape[1] == 1:
        return t.view(Q, L, H, P)
    return t.transpose(1, 2).reshape(Q, L, H, P)


def rowdot(a: Tensor, b: Tensor) -> Tensor:
    """sum(a * b, -1). For short contiguous rows as a batch of (1 x P) @ (P x 1) products: one
    read of each operand, where mul + sum writes and rereads the product. Rows longer than 256 run
    5x slower that way (MKL, measured at P=512 and 8192), so they are split into rows of 64 and
    the partial sums added."""
    P = a.shape[-1]
    if a.is_contiguous() and b.is_contiguous():
        if P > 256 and P % 64 == 0:
            return rowdot(a.unflatten(-1, (P // 64, 64)), b.unflatten(-1, (P // 64, 64))).sum(-1)
        if P <= 256:
            return torch.bmm(a.view(-1, 1, P), b.view(-1, P, 1)).view(a.shape[:-1])
    return (a * b).sum(-1)


def _head_major_dtx(xq: Tensor, dtq: Tensor) -> Tensor:
    """dt * x as (Q,H,L,P), contiguous per head for the intra-chunk products."""
    Q, L, H, P = xq.shape
    out = torch.empty(Q, H, L, P, dtype=xq.dtype, device=xq.device)
    return torch.mul(xq.transpose(1, 2), dtq.transpose(1, 2).unsqueeze(-1), out=out)


def chunk_forward(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Optional[Tensor],
    init: Optional[Tensor],
    L: int,
    keep: bool = True,
) -> Tuple[Tensor, Tensor, Optional[tuple]]:
    """Returns y (S,T,H,P) contiguous, final state (S,H,P,N), and (when keep) what backward
    reads: the chunk-entry states, the decay and score-weighted matrices, dt*x in both layouts.
    Keeping the last four costs 4 floats per (frame, channel) and saves recomputing them."""
    S, T, H, P = x.shape
    G, N = B.shape[-2:]
    r, c = H // G, T // L
    Q = S * c
    xq = x.reshape(Q, L, H, P)
    Bq, Cq = _groups(B, Q, L), _groups(C, Q, L)
    dtq = dt.reshape(Q, L, H)
    cum = (dtq * A.repeat_interleave(c, 0).unsqueeze(1)).cumsum_(1)  # (Q,L,H)

    # intra-chunk, one (L x L) @ (L x P) product per (chunk, head)
    Lmat = _decay_matrix(cum).view(Q, G, r, L, L)
    Gm = _gbmm(Cq, Bq.transpose(1, 2), tb=True)  # (Q,G,L,L)
    M = Lmat * Gm.unsqueeze(2) if keep else Lmat.mul_(Gm.unsqueeze(2))
    del Gm
    Xdh = _head_major_dtx(xq, dtq)
    y_diag = torch.bmm(M.view(Q * H, L, L), Xdh.view(Q * H, L, P)).view(Q, H, L, P)

    # chunk states: the recurrence prev_{j+1} = decay_j prev_j + (Xd_j o w_j)^T @ B_j runs one chunk
    # at a time (a group's heads stacked: (rP x L) @ (L x N)), so each state is made, decayed and
    # passed on while in cache, where whole-block state tensors were the largest memory traffic.
    # Its operands are copied chunk-major (c, S, ...) once, so every per-chunk slice is contiguous
    # and the products over all chunks (y_off = C_j prev_j^T here) stay single batched matmuls.
    last = cum[:, -1:, :]
    w = (last - cum).exp_()  # (Q,L,H), <= 1
    Xdw = x.new_empty(c, S, L, G, r * P)
    torch.mul(
        xq.view(S, c, L, G, r, P).transpose(0, 1),
        (dtq * w).view(S, c, L, G, r, 1).transpose(0, 1),
        out=Xdw.view(c, S, L, G, r, P),
    )
    Bc = Bq.view(S, c, L, G, N).transpose(0, 1).contiguous()  # (c,S,L,G,N)
    Cc = Cq.view(S, c, L, G, N).transpose(0, 1).contiguous()
    prev = x.new_empty(c, S, G, r * P, N)
    final = _recurrence(prev, last.exp().view(S, c, G, r, 1, 1), init, Xdw, Bc, r, P)
    yoff = _gbmm(Cc.view(c * S, L, G, N), prev.view(c * S, G, r * P, N), tb=True)  # (cS,G,L,rP)
    # y = exp(cum) o y_off + y_diag (+ D x), written time-major from the chunk- and head-major parts
    y = x.new_empty(S, T, H, P)
    torch.addcmul(
        y_diag.view(S, c, G, r, L, P).permute(0, 1, 4, 2, 3, 5),
        yoff.view(c, S, G, L, r, P).permute(1, 0, 3, 2, 4, 5),
        cum.exp_().view(S, c, L, G, r, 1),
        out=y.view(S, c, L, G, r, P),
    )
    del yoff, y_diag
    if D is not None:
        y.addcmul_(x, D.view(S, 1, H, 1))
    final = final.view(S, H, P, N)
    saved = (prev, Lmat, M, Xdh, Xdw, Bc, Cc) if keep else None
    return y, final, saved


def chunk_backward(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Optional[Tensor],
    y: Tensor,
    saved: tuple,
    dy: Tensor,
    dfinal: Optional[Tensor],
    L: int,
    out: Optional[Tuple[Tensor, Tensor, Tensor]] = None,
) -> List[Optional[Tensor]]:
    """Gradients [dx, ddt, dA, dB, dC, dD, dinit] of chunk_forward, given its output y and saved
    tensors, dy (S,T,H,P) and the gradient of the final state (or None). dA and dD are (S,H): the
    caller sums heads shared across sequences. `out` = (dx, dB, dC) buffers to write into (views
    of a larger tensor are fine)."""
    S, T, H, P = x.shape
    G, N = B.shape[-2:]
    r, c = H // G, T // L
    Q = S * c
    prev, Lmat, M, Xdh, Xdw, Bc, Cc = saved
    xq = x.reshape(Q, L, H, P)
    Bq, Cq = _groups(B, Q, L), _groups(C, Q, L)
    dtq = dt.reshape(Q, L, H)
    Aq = A.repeat_interleave(c, 0).unsqueeze(1)
    cum = (dtq * Aq).cumsum_(1)
    dyq = dy.reshape(Q, L, H, P)
    if out is None:
        out = (torch.empty_like(x), B.new_empty(B.shape), C.new_empty(C.shape))
    dx_out, dB_out, dC_out = out

    # d/d cum_l of y_l. Of y's three terms, exp(cum_l) C_l prev^T contributes (dy . y_off)_l,
    # y_diag contributes rowsum - colsum of dM o M, and D x none; since dy . y_diag is that same
    # rowsum, dcum = dy.y - D dy.x - colsum(dM o M) (+ the chunk-state terms below).
    dyx = rowdot(dyq, xq)  # (Q,L,H)
    dcum = rowdot(dyq, y.reshape(Q, L, H, P))
    dD = None
    if D is not None:
        Dq = D.repeat_interleave(c, 0).unsqueeze(1)
        dcum.sub_(dyx * Dq)
        dD = dyx.view(S, T, H).sum(1)

    # chunk states (see chunk_forward). The adjoint recurrence runs backwards one chunk at a time,
    # dS_j = d prev_{j+1}:  dS_{j-1} = decay_j dS_j + dYo_j^T @ C_j  with dYo = dy o exp(cum);
    # then over all chunks at once: d log decay_j = decay_j <dS_j, prev_j>, dB += (Xd o w) @ dS,
    # d(Xd o w) = B @ dS^T, dC += dYo @ prev.
    dYo = x.new_empty(c, S, L, G, r * P)
    torch.mul(
        dyq.view(S, c, L, G, r, P).transpose(0, 1),
        cum.exp().view(S, c, L, G, r, 1).transpose(0, 1),
        out=dYo.view(c, S, L, G, r, P),
    )
    decay = cum[:, -1, :].exp().view(S, c, H)
    dS = x.new_empty(c, S, G, r * P, N)
    dinit = _recurrence(dS, decay.view(S, c, G, r, 1, 1), dfinal, dYo, Cc, r, P, reverse=True)
    dinit = dinit.view(S, H, P * N)
    dlam = rowdot(dS.view(c, S, H, P * N), prev.view(c, S, H, P * N))  # (c,S,H)
    dcum[:, -1, :] += (dlam.transpose(0, 1) * decay).reshape(Q, H)
    cs = c * S
    dS_g = dS.view(cs, G, r * P, N)
    dBs = _gbmm(Xdw.view(cs, L, G, r * P), dS_g)  # (cS,G,L,N)
    dXdw = _gbmm(Bc.view(cs, L, G, N), dS_g, tb=True)  # (cS,G,L,rP)
    dCs = _gbmm(dYo.view(cs, L, G, r * P), prev.view(cs, G, r * P, N))  # (cS,G,L,N)
    del dS_g
    del dS, dYo
    dBs, dCs = dBs.view(c, S, G, L, N), dCs.view(c, S, G, L, N)

    w = (cum[:, -1:, :] - cum).exp_()
    dXdw_t = dXdw.view(c, S, G, L, r, P).permute(1, 0, 3, 2, 4, 5)  # (S,c,L,G,r,P) view
    x6 = xq.view(S, c, L, G, r, P)
    dw = (dXdw_t * x6).sum(-1).view(Q, L, H).mul_(dtq * w)  # dL/dw * w
    dcum -= dw
    dcum[:, -1, :] += dw.sum(1)
    del dw
    dXd = x.new_empty(Q, L, H, P)
    torch.mul(dXdw_t, w.view(S, c, L, G, r, 1), out=dXd.view(S, c, L, G, r, P))
    del dXdw, dXdw_t

    # intra-chunk. Through Lmat, cum_s gets -colsum(dM o M)_s = -sum_l M_ls (dy_l . Xd_s)
    # = -(Xd_s . dXd_s) with dXd = M^T dy, a dot over P instead of a pass over (L x L).
    dyh = dyq.transpose(1, 2).contiguous()  # (Q,H,L,P)
    dM = torch.bmm(dyh.view(Q * H, L, P), Xdh.view(Q * H, L, P).transpose(1, 2)).view(Q, G, r, L, L)
    dXdh = torch.bmm(M.view(Q * H, L, L).transpose(1, 2), dyh.view(Q * H, L, P)).view(Q, H, L, P)
    del dyh
    dcum -= rowdot(dXdh, Xdh).transpose(1, 2)
    dXd.add_(dXdh.transpose(1, 2))
    del dXdh
    dGm = dM[:, :, 0] * Lmat[:, :, 0]  # (Q,G,L,L): sum over the group's heads of dM o Lmat
    for i in range(1, r):
        dGm.addcmul_(dM[:, :, i], Lmat[:, :, i])
    del dM
    dC = _gbmm(dGm.transpose(1, 2), Bq.transpose(1, 2))  # (Q,G,L,N): dGm @ B
    dB = _gbmm(dGm.transpose(-1, -2).transpose(1, 2), Cq.transpose(1, 2))  # dGm^T @ C
    del dGm
    # intra-chunk part (sequence-major) + chunk-state part (chunk-major), into the time-major outputs
    for tgt, a, b in ((dC_out, dC, dCs), (dB_out, dB, dBs)):
        torch.add(a.view(S, c, G, L, N).permute(0, 1, 3, 2, 4), b.permute(1, 0, 3, 2, 4), out=tgt.view(S, c, L, G, N))
    del dB, dC, dBs, dCs

    # Xd = dt * x, D x
    ddt = rowdot(dXd, xq)
    dxq = dx_out.view(Q, L, H, P)
    if D is None:
        torch.mul(dXd, dtq.unsqueeze(-1), out=dxq)
    else:
        torch.mul(dyq, Dq.unsqueeze(-1), out=dxq).addcmul_(dXd, dtq.unsqueeze(-1))
    del dXd
    # cum = cumsum(dt * A): reverse cumulative sum of dcum
    da = dcum.flip(1).cumsum_(1).flip(1)
    ddt.addcmul_(da, Aq)
    dA = (da * dtq).sum(1).view(S, c, H).sum(1)
    return [dx_out, ddt.view(S, T, H), dA, dB_out, dC_out, dD, dinit]
