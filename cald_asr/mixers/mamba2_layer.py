"""K same-shaped Mamba2 mixers on K input sequences as one autograd node, processed in blocks of
time with forward and backward written out by hand.

Why blocks: every intermediate of a block (a few thousand frames) is a tensor of a few MB. Whole-
sequence intermediates at T=32000 are hundreds of MB each; glibc hands those out as fresh mmap'd
pages, and faulting them in cost more than the arithmetic (measured: 5.1 s -> 2.6 s per fwd+bwd
at T=32000 when malloc was told to keep such blocks), so time per frame grew with T. Only the SSD
state (heads x headdim x d_state) and the last d_conv-1 conv inputs cross a block boundary, forward
in time in forward, backward in time in backward.

Why by hand: one pass over each intermediate where autograd would make several (saved
activations, gradient formulas of each small op), in-place updates, and only what backward needs
is kept (in_proj output, conv pre-activation and output, scan output and its saved tensors, the
gate and the normalised output).

Layout: sequences s = (mixer k, batch row), time, channels; per-mixer weights are used through a
loop over k around each matmul, so no weight is copied. The K mixers of a layer (bidirectional:
K=2) go through each op together, and each op splits across the intra-op threads. One Python
thread per mixer (this file's earlier design) lost at T=2000 once the conv ran in row tiles: a
tile's ops are short, and two Python threads issuing short ops wait on each other for the GIL
(measured: 100-103 ms against 93-96 ms per fwd+bwd at T=2000, d_model 384, 2 threads; equal at
8000 and 32000)."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .ssd_core import chunk_backward, chunk_forward, rowdot

# frames per block: large enough that per-op overhead is small, small enough that each block
# tensor stays well under glibc's 32 MB mmap threshold (measured on the 2-core CPU, d_model 384)
DEFAULT_BLOCK = 2048

PARAMS_PER_MIXER = 10  # in_w, in_b, conv_w, conv_b, dt_bias, A_log, D, norm_w, out_w, out_b


class Conf(NamedTuple):
    H: int
    P: int
    G: int
    N: int
    di: int
    cd: int
    Kc: int
    L: int
    eps: float
    gs: int
    block: int


def mixer_params(m) -> List[Optional[Tensor]]:
    return [m.in_proj.weight, m.in_proj.bias, m.conv1d.weight, m.conv1d.bias, m.dt_bias, m.A_log,
            m.D, m.norm.weight, m.out_proj.weight, m.out_proj.bias]


def conf_of(m, block: Optional[int] = None) -> Conf:
    """The shapes run_layer needs, from a Mamba2 module; block defaults to DEFAULT_BLOCK (read at
    call time), rounded down to whole chunks."""
    L = m.chunk_size
    block = max(L, (block or DEFAULT_BLOCK) // L * L)
    return Conf(m.nheads, m.headdim, m.ngroups, m.d_state, m.d_inner, m.conv_dim, m.d_conv, L,
                m.norm.eps, m.norm.group_size, block)


def run_layer(X: Tensor, cf: Conf, params: Sequence[Optional[Tensor]]) -> Tensor:
    """X (K,b,T,D): input of mixer k in its own time order -> (K,b,T,D) outputs."""
    if torch.is_grad_enabled() and (X.requires_grad or any(p is not None and p.requires_grad for p in params)):
        return _Layer.apply(X, cf, *params)
    return _forward(X, cf, list(params), save=False)[0]


def _save(ctx, first: Tensor, params: Sequence[Optional[Tensor]], saved: list) -> None:
    """Keep the input, the parameters present and every block's saved tensors for backward, through
    save_for_backward, so autograd frees them after a backward without retain_graph."""
    ctx.present = [p is not None for p in params]
    ctx.shape = [len(blk) for blk in saved]
    flat = [t for blk in saved for t in blk]
    ctx.save_for_backward(first, *[p for p in params if p is not None], *flat)


def _restore(ctx):
    """-> (input, parameters with None where absent, saved blocks), as _save left them."""
    first, *rest = ctx.saved_tensors
    n_par = sum(ctx.present)
    it = iter(rest[:n_par])
    params = [next(it) if has else None for has in ctx.present]
    flat = iter(rest[n_par:])
    return first, params, [[next(flat) for _ in range(n)] for n in ctx.shape]


def run_directions(x: Tensor, reverse: Sequence[bool], cf: Conf, params: Sequence[Optional[Tensor]]) -> Tensor:
    """Full-length rows (no padding): sum over k of mixer k on x (b,T,D), read reversed in time where
    reverse[k]; equals run_layer on the stacked, reversed inputs with its outputs un-reversed and
    summed. Each mixer reads its blocks straight from x (reversing one block at a time) and adds its
    output, and in backward its input gradient, into one shared tensor in x's time order: no stacked
    inputs, whole-sequence reversed, padded or per-mixer copies, which cost ~5 % of a fwd+bwd at
    T=2000 and, on a long recording, a fresh mmap each whose pages fault in on first touch (2.6 GB
    of faults per 10-minute encode, measured, before this path)."""
    if torch.is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in params)):
        return _FullRows.apply(x, tuple(reverse), cf, *params)
    return _full_rows_forward(x, reverse, cf, list(params), save=False)[0]


def _full_rows_forward(x: Tensor, reverse: Sequence[bool], cf: Conf, params: list, save: bool):
    return _forward(x.unsqueeze(0), cf, params, save, reverse=reverse)


class _FullRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, reverse, cf, *params):
        out, saved = _full_rows_forward(x, reverse, cf, list(params), save=True)
        ctx.cf, ctx.reverse = cf, reverse
        _save(ctx, x, params, saved)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, params, saved = _restore(ctx)
        dx, *grads = _backward(x.unsqueeze(0), ctx.cf, params, saved, dout.contiguous().unsqueeze(0),
                               reverse=ctx.reverse)
        return (dx, None, None, *grads)


class _Layer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, cf, *params):
        Y, saved = _forward(X, cf, list(params), save=True)
        ctx.cf = cf
        _save(ctx, X, params, saved)
        return Y

    @staticmethod
    def backward(ctx, dY):
        X, params, saved = _restore(ctx)
        grads = _backward(X, ctx.cf, params, saved, dY.contiguous())
        return (grads[0], None, *grads[1:])


# ---- shared pieces ---------------------------------------------------------------------------
class _P(NamedTuple):
    """Per-direction parameters, stacked where small, listed where large."""
    in_w: List[Tensor]
    in_b: List[Optional[Tensor]]
    conv_w: Tensor  # (Kc, K, 1, 1, cd)
    conv_b: Optional[Tensor]  # (K, 1, 1, cd)
    dt_bias: Tensor  # (K, 1, 1, H)
    A: Tensor  # (K, H), negative
    D: Tensor  # (K, H)
    norm_w: Tensor  # (K, di)
    out_w: List[Tensor]
    out_b: List[Optional[Tensor]]


def _unpack(params, K: int) -> _P:
    per = [params[i * PARAMS_PER_MIXER:(i + 1) * PARAMS_PER_MIXER] for i in range(K)]
    col = lambda j: [p[j] for p in per]  # noqa: E731
    conv_w = torch.stack([w[:, 0] for w in col(2)])  # (K, cd, Kc)
    conv_b = None
    if any(v is not None for v in col(3)):
        conv_b = torch.stack([v if v is not None else conv_w.new_zeros(conv_w.shape[1]) for v in col(3)])
        conv_b = conv_b[:, None, None]
    return _P(col(0), col(1), conv_w.permute(2, 0, 1)[:, :, None, None], conv_b,
              torch.stack(col(4))[:, None, None], -torch.exp(torch.stack(col(5))), torch.stack(col(6)),
              torch.stack(col(7)), col(8), col(9))


def _linear_into(out: Tensor, x: Tensor, w: Tensor, bias: Optional[Tensor]) -> None:
    """out (..., n) = x (..., m) @ w^T (+ bias), written in place."""
    x2 = x.reshape(-1, x.shape[-1])
    if out.is_contiguous():
        o2 = out.view(-1, out.shape[-1])
        if bias is None:
            torch.mm(x2, w.t(), out=o2)
        else:
            torch.addmm(bias, x2, w.t(), out=o2)
    else:
        out.copy_(F.linear(x2, w, bias).view(out.shape))


def _mm_into(out: Tensor, a: Tensor, b: Tensor) -> None:
    """out (..., n) = a (..., m) @ b (m, n), written in place."""
    a2 = a.reshape(-1, a.shape[-1])
    if out.is_contiguous():
        torch.mm(a2, b, out=out.view(-1, out.shape[-1]))
    else:
        out.copy_((a2 @ b).view(out.shape))


def _rows(X: Tensor, k: int, s: int, n: int, reverse: Optional[Sequence[bool]]) -> Tensor:
    """Frames [s, s+n) of mixer k's input, (b,n,D), in its reading order. reverse None: X is (K,b,T,D),
    a view of X[k]. Else X is (1,b,T,D) (full-length rows, shared): a view, or where reverse[k]
    frames [T-s-n, T-s) reversed, a block-sized copy."""
    if reverse is None:
        return X[k, :, s:s + n]
    T = X.shape[2]
    return X[0, :, T - s - n:T - s].flip(1) if reverse[k] else X[0, :, s:s + n]


def _write_rows(out: Tensor, s: int, n: int, reverse: bool, a: Tensor, w: Tensor,
                bias: Optional[Tensor] = None, written: Optional[list] = None) -> None:
    """out (b,T,n_out) frames [s, s+n) in reading order = a (b,n,m) @ w^T (+ bias); when reverse,
    written to frames [T-s-n, T-s) reversed.

    With `written` (full-length rows: every mixer writes into one shared output, which saves a
    whole-sequence tensor per mixer and the pass that sums them): the frame intervals other
    mixers have written so far. Those frames are added to, the rest are set; bias is then the sum
    of all mixers' biases, included where a frame is set (each frame is set exactly once)."""
    T = out.shape[1]
    r0, r1 = (T - s - n, T - s) if reverse else (s, s + n)
    pieces = [(r0, r1, False)] if written is None else _pieces(r0, r1, written)
    for p0, p1, add in pieces:
        i0, i1 = (T - s - p1, T - s - p0) if reverse else (p0 - s, p1 - s)  # rows of a
        dst = out[:, p0:p1]
        if reverse:
            lin = F.linear(a[:, i0:i1], w, None if add else bias)
            if add:
                dst.add_(lin.flip(1))
            else:
                torch.ops.aten.flip.out(lin, [1], out=dst)
        elif add:
            if dst.is_contiguous():
                dst.view(-1, dst.shape[-1]).addmm_(a[:, i0:i1].reshape(-1, a.shape[-1]), w.t())
            else:
                dst.add_(F.linear(a[:, i0:i1], w))
        else:
            _linear_into(dst, a[:, i0:i1], w, bias)
    if written is not None:
        _mark(written, r0, r1)


def _pieces(r0: int, r1: int, written: list) -> list:
    """[r0, r1) cut at the edges of the intervals in `written` -> (p0, p1, already written)."""
    cuts = sorted({r0, r1} | {e for iv in written for e in iv if r0 < e < r1})
    return [(a, b, any(lo <= a and b <= hi for lo, hi in written)) for a, b in zip(cuts, cuts[1:])]


def _mark(written: list, r0: int, r1: int) -> None:
    """Add [r0, r1) to the sorted, disjoint intervals in `written`, merging neighbours."""
    ivs = sorted(written + [(r0, r1)])
    merged = [ivs[0]]
    for lo, hi in ivs[1:]:
        if lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    written[:] = merged


def _split(xBC: Tensor, cf: Conf, S: int, T: int):
    di, GN = cf.di, cf.G * cf.N
    xs = xBC[..., :di].view(S, T, cf.H, cf.P)
    Bm = xBC[..., di:di + GN].view(S, T, cf.G, cf.N)
    Cm = xBC[..., di + GN:].view(S, T, cf.G, cf.N)
    return xs, Bm, Cm


# ---- forward ---------------------------------------------------------------------------------
def _forward(X: Tensor, cf: Conf, params, save: bool, reverse: Optional[Sequence[bool]] = None):
    """Per block: zx = in_proj(x) (with the previous block's last Kc-1 rows above it, which the
    causal conv reads), u = conv(x, B, C), xBC = silu(u), dt = softplus(.), SSD scan, gated RMS
    norm, out_proj. The norm weight is folded into out_proj's weight. -> (Y, saved blocks).
    reverse None: X (K,b,T,D), mixer k reads X[k], Y (K,b,T,D). Else (full-length rows) X (1,b,T,D)
    is read by every mixer, reversed in time where reverse[k] (see _rows), and Y (b,T,D) is the sum
    of their outputs in X's time order (see _write_rows)."""
    K = len(params) // PARAMS_PER_MIXER
    _, b, T, Dm = X.shape
    p = _unpack(params, K)
    S, di, cd, H, Kc, L = K * b, cf.di, cf.cd, cf.H, cf.Kc, cf.L
    Din = di + cd + H
    Tp = -(-T // L) * L
    A_s, D_s = p.A.repeat_interleave(b, 0), p.D.repeat_interleave(b, 0)
    out_w = [p.out_w[k] * p.norm_w[k] for k in range(K)]
    Y = X.new_empty(K, b, T, Dm) if reverse is None else X.new_empty(b, T, Dm)
    written = None if reverse is None else []
    out_b = p.out_b
    if reverse is not None:  # one shared output: each frame's bias sum is added where it is set
        present = [v for v in p.out_b if v is not None]
        out_b = [sum(present) if present else None] * K
    hist = X.new_zeros(K, b, Kc - 1, Din)
    state = None
    saved = []
    for s in range(0, Tp, cf.block):
        e = min(s + cf.block, Tp)
        Tb = e - s
        n = min(e, T) - s  # frames of the sequence in this block; the rest pads it to whole chunks
        zxh = X.new_empty(K, b, Kc - 1 + Tb, Din)
        zxh[:, :, :Kc - 1] = hist
        for k in range(K):
            _linear_into(zxh[k, :, Kc - 1:Kc - 1 + n], _rows(X, k, s, n, reverse), p.in_w[k], p.in_b[k])
            if n < Tb:  # in_proj of the zero frames that pad the block to whole chunks
                if p.in_b[k] is None:
                    zxh[k, :, Kc - 1 + n:].zero_()
                else:
                    zxh[k, :, Kc - 1 + n:].copy_(p.in_b[k])
        hist = zxh[:, :, Tb:]
        zx = zxh[:, :, Kc - 1:]
        u, xBC = _conv_silu(zxh[..., di:di + cd], p.conv_w, p.conv_b)
        dt = F.softplus(zx[..., di + cd:] + p.dt_bias)
        xs, Bm, Cm = _split(xBC, cf, S, Tb)
        y, state, ssd_saved = chunk_forward(xs, dt.reshape(S, Tb, H), A_s, Bm, Cm, D_s, state, L, keep=save)
        y = y.view(K, b, Tb, di)
        sz = F.silu(zx[..., :di])
        gn = (y * sz).view(K, b, Tb, di // cf.gs, cf.gs)
        rstd = torch.linalg.vector_norm(gn, dim=-1, keepdim=True).square_().div_(cf.gs).add_(cf.eps).rsqrt_()
        gn = gn.mul_(rstd).view(K, b, Tb, di)
        for k in range(K):
            _write_rows(Y if written is not None else Y[k], s, n, bool(reverse and reverse[k]), gn[k, :, :n],
                        out_w[k], out_b[k], written)
        if save:
            saved.append((zxh, u, xBC, y, sz, gn, rstd, *ssd_saved))
    return Y, saved


# ---- causal depthwise conv and SiLU, in tiles of rows ------------------------------------------
# The conv is Kc shifted multiply-adds over (frames x channels) and its backward twice that plus
# the weight gradient: a dozen memory-bound passes. Done a tile of rows at a time, a tile's
# operands stay in cache between passes, where whole-block passes stream each from L3 or memory.
# Measured on the 2-core CPU, 640 channels, 2048 frames: the weight gradient takes 1.7 ms in
# tiles of 128 rows against 4.8 ms as whole-block BLAS products of channel tiles, and a whole
# BiMamba2 layer's fwd+bwd at T=2000 91-93 ms with tiles of 64-128 rows per sequence against 110 ms
# untiled. A tile holds CONV_ROWS rows over all sequences, so each op stays about that size.
CONV_ROWS = 256


def _conv_rows(K: int, b: int) -> int:
    return max(1, CONV_ROWS // (K * b))


def _windows(xpad: Tensor, s: int, n: int, Kc: int) -> Tensor:
    """(K,b,Kc,n,cd) view: window j = xpad rows [s+j, s+j+n). xpad's time stride is reused for
    the window axis, so no copy."""
    K, b, _, cd = xpad.shape
    st = xpad.stride()
    return xpad.as_strided((K, b, Kc, n, cd), (st[0], st[1], st[2], st[2], st[3]),
                           xpad.storage_offset() + s * st[2])


def _conv_silu(xpad: Tensor, w: Tensor, bias: Optional[Tensor]):
    """xpad (K,b,Kc-1+T,cd) (the Kc-1 rows before the block on top), w (Kc,K,1,1,cd), bias
    (K,1,1,cd) -> u = causal conv (K,b,T,cd), silu(u)."""
    Kc = w.shape[0]
    K, b, Tpad, cd = xpad.shape
    T = Tpad - Kc + 1
    u = xpad.new_empty(K, b, T, cd)
    act = torch.empty_like(u)
    R = _conv_rows(K, b)
    for s in range(0, T, R):
        e = min(s + R, T)
        us = u[:, :, s:e]
        if bias is None:
            torch.mul(xpad[:, :, s + Kc - 1:e + Kc - 1], w[Kc - 1], out=us)
        else:
            torch.addcmul(bias, xpad[:, :, s + Kc - 1:e + Kc - 1], w[Kc - 1], out=us)
        for j in range(Kc - 1):
            us.addcmul_(xpad[:, :, s + j:e + j], w[j])
        torch.ops.aten.silu.out(us, out=act[:, :, s:e])
    return u, act


def _conv_silu_backward(dact: Tensor, u: Tensor, xpad: Tensor, w: Tensor, dxpad: Tensor,
                        g_w: Tensor, g_b: Optional[Tensor]) -> None:
    """Backward of _conv_silu. dact (K,b,T,cd) holds d silu(u) and is overwritten with du; writes
    dxpad (shaped as xpad) and adds the weight gradient to g_w (Kc,K,cd) and the bias gradient to
    g_b (K,cd). A row of dxpad collects taps from this tile and the next Kc-2: it is set by the
    tile that first reaches it (tap Kc-1) and added to by later taps, in order."""
    Kc = w.shape[0]
    K, b, T, cd = dact.shape
    R = _conv_rows(K, b)
    dxpad[:, :, :Kc - 1].zero_()
    prods = dact.new_empty(K, b, Kc, min(R, T), cd)
    for s in range(0, T, R):
        e = min(s + R, T)
        d = dact[:, :, s:e]
        torch.ops.aten.silu_backward.grad_input(d, u[:, :, s:e], grad_input=d)
        if g_b is not None:
            g_b += d.sum((1, 2))
        torch.mul(d, w[Kc - 1], out=dxpad[:, :, s + Kc - 1:e + Kc - 1])
        for j in range(Kc - 1):
            dxpad[:, :, s + j:e + j].addcmul_(d, w[j])
        pr = prods[:, :, :, :e - s]
        torch.mul(d.unsqueeze(2), _windows(xpad, s, e - s, Kc), out=pr)
        g_w += pr.sum((1, 3)).transpose(0, 1)


# ---- backward --------------------------------------------------------------------------------


def _backward(X: Tensor, cf: Conf, params, saved, dY: Tensor, reverse: Optional[Sequence[bool]] = None):
    """Gradients [dX, *parameter grads] of _forward, dX shaped as its Y; dY laid out as X (see _rows)."""
    K = len(params) // PARAMS_PER_MIXER
    _, b, T, Dm = X.shape
    p = _unpack(params, K)
    S, di, cd, H, Kc, L, P = K * b, cf.di, cf.cd, cf.H, cf.Kc, cf.L, cf.P
    Din = di + cd + H
    Tp = -(-T // L) * L
    A_s, D_s = p.A.repeat_interleave(b, 0), p.D.repeat_interleave(b, 0)
    out_w = [p.out_w[k] * p.norm_w[k] for k in range(K)]
    dY = dY.contiguous()
    dX = X.new_empty(K, b, T, Dm) if reverse is None else X.new_empty(b, T, Dm)
    written = None if reverse is None else []
    g_in_w = [torch.zeros_like(w) for w in p.in_w]
    g_in_b = [None if v is None else torch.zeros_like(v) for v in p.in_b]
    g_outn = [torch.zeros_like(w) for w in p.out_w]  # gradient of out_w * norm_w
    g_out_b = [None if v is None else torch.zeros_like(v) for v in p.out_b]
    g_conv_w = X.new_zeros(Kc, K, cd)
    g_conv_b = X.new_zeros(K, cd)
    g_dt_bias = X.new_zeros(K, H)
    g_A = X.new_zeros(K, H)
    g_D = X.new_zeros(K, H)
    dstate = None
    dtail = None
    starts = list(range(0, Tp, cf.block))
    for s, (zxh, u, xBC, y, sz, gn, rstd, *ssd_saved) in zip(reversed(starts), reversed(saved)):
        e = min(s + cf.block, Tp)
        Tb = e - s
        zx = zxh[:, :, Kc - 1:]
        z = zx[..., :di]
        dzxh = X.new_empty(K, b, Kc - 1 + Tb, Din)
        dzx = dzxh[:, :, Kc - 1:]

        # out_proj and gated RMS norm: out = (g * rstd) @ (out_w * norm_w)^T, g = y * silu(z)
        n = min(e, T) - s  # padding frames after them have zero output gradient
        gu = X.new_empty(K, b, Tb, di)
        for k in range(K):
            dYb = _rows(dY, k, s, n, reverse)
            d2 = dYb.reshape(-1, Dm)
            g_outn[k].addmm_(d2.t(), gn[k, :, :n].reshape(-1, di))
            if g_out_b[k] is not None:
                g_out_b[k] += d2.sum(0)
            _mm_into(gu[k, :, :n], dYb, out_w[k])
        gu[:, :, n:].zero_()
        gu5 = gu.view(K, b, Tb, -1, cf.gs)
        gn5 = gn.view(K, b, Tb, -1, cf.gs)
        m = rowdot(gu5, gn5).unsqueeze(-1).div_(cf.gs)
        dg = gu5.addcmul_(gn5, m, value=-1).mul_(rstd).view(K, b, Tb, di)
        dy_ssd = dg * sz
        torch.ops.aten.silu_backward.grad_input(dg.mul_(y), z, grad_input=dzx[..., :di])
        del gu, gu5, gn5, m, dg

        # SSD scan; its input gradients land in the conv-output gradient buffer
        dt_raw = zx[..., di + cd:] + p.dt_bias
        dt = F.softplus(dt_raw)
        xs, Bm, Cm = _split(xBC, cf, S, Tb)
        du = X.new_empty(K, b, Tb, cd)
        dxs, dBm, dCm = _split(du, cf, S, Tb)
        _, ddt, dA, _, _, dD, dstate = chunk_backward(
            xs, dt.reshape(S, Tb, H), A_s, Bm, Cm, D_s, y.view(S, Tb, H, P), ssd_saved,
            dy_ssd.view(S, Tb, H, P), dstate, L, out=(dxs, dBm, dCm))
        del dy_ssd
        g_A += dA.view(K, b, H).sum(1)
        g_D += dD.view(K, b, H).sum(1)
        ddt_raw = torch.mul(ddt.view(K, b, Tb, H), torch.sigmoid(dt_raw), out=dzx[..., di + cd:])
        g_dt_bias += ddt_raw.sum((1, 2))

        # silu and causal depthwise conv over the rows above the block too
        dxpad = dzxh[..., di:di + cd]
        _conv_silu_backward(du, u, zxh[..., di:di + cd], p.conv_w, dxpad, g_conv_w,
                            g_conv_b if p.conv_b is not None else None)
        del du
        if dtail is not None:
            dxpad[:, :, Tb:] += dtail
        dtail = dxpad[:, :, :Kc - 1].clone()

        # padding frames: zero input, and nothing valid reads them (their dzx is zero)
        for k in range(K):
            d2 = dzx[k, :, :n].reshape(-1, Din)
            g_in_w[k].addmm_(d2.t(), _rows(X, k, s, n, reverse).reshape(-1, Dm))
            if g_in_b[k] is not None:
                g_in_b[k] += d2.sum(0)
            _write_rows(dX if written is not None else dX[k], s, n, bool(reverse and reverse[k]), dzx[k, :, :n],
                        p.in_w[k].t(), None, written)
        del dzxh, dzx

    g_A_log = g_A * p.A  # A = -exp(A_log)
    grads: List[Optional[Tensor]] = [dX]
    for k in range(K):
        conv_b_grad = g_conv_b[k] if params[k * PARAMS_PER_MIXER + 3] is not None else None
        g_norm = (g_outn[k] * p.out_w[k]).sum(0)
        grads += [g_in_w[k], g_in_b[k], g_conv_w[:, k].t().unsqueeze(1), conv_b_grad, g_dt_bias[k],
                  g_A_log[k], g_D[k], g_norm, g_outn[k] * p.norm_w[k], g_out_b[k]]
    return grads
