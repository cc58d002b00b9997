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

from cald_asr.mixers.ops.autocast import float32_under_autocast

from .block_rows import linear_into, mm_into, read_rows, write_rows
from .conv import causal_conv_silu, causal_conv_silu_backward
from .ssd_chunks import chunk_backward, chunk_forward, rowdot

# frames per block: large enough that per-op overhead is small, small enough that each block
# tensor stays well under glibc's 32 MB mmap threshold (measured on the 2-core CPU, d_model 384)
DEFAULT_BLOCK = 2048

PARAMS_PER_MIXER = 10  # in_w, in_b, conv_w, conv_b, dt_bias, A_log, D, norm_w, out_w, out_b


class Conf(NamedTuple):
    """The shapes of one Mamba2 mixer (conf_of reads them off the module, under its attribute names)
    and the block length the layer runs in."""

    nheads: int  # SSD heads H, each with its own scalar decay A, dt bias and D
    headdim: int  # channels per head P; d_inner = nheads * headdim
    ngroups: int  # groups G of B and C; head h reads group h // (nheads // ngroups)
    d_state: int  # state size N of each head (the length of B_t and C_t)
    d_inner: int  # width of x and z after in_proj (expand * d_model)
    conv_dim: int  # channels the causal conv runs over: x, B and C, d_inner + 2 * ngroups * d_state
    d_conv: int  # conv kernel length; its last d_conv - 1 inputs cross a block boundary
    chunk_size: int  # SSD chunk length L; blocks are whole chunks, the sequence is padded to them
    eps: float  # added to the mean square in the gated RMS norm
    group_size: int  # channels normalised together by the gated RMS norm (d_inner // ngroups)
    block: int  # frames per block of time, a multiple of chunk_size


def mixer_params(m) -> List[Optional[Tensor]]:
    """A Mamba2 module's parameters in the order the layer takes them (None for an absent bias)."""
    return [
        m.in_proj.weight,
        m.in_proj.bias,
        m.conv1d.weight,
        m.conv1d.bias,
        m.dt_bias,
        m.A_log,
        m.D,
        m.norm.weight,
        m.out_proj.weight,
        m.out_proj.bias,
    ]


def conf_of(m, block: Optional[int] = None) -> Conf:
    """The shapes run_layer needs, from a Mamba2 module; block defaults to DEFAULT_BLOCK (read at
    call time), rounded down to whole chunks."""
    L = m.chunk_size
    block = max(L, (block or DEFAULT_BLOCK) // L * L)
    return Conf(
        m.nheads,
        m.headdim,
        m.ngroups,
        m.d_state,
        m.d_inner,
        m.conv_dim,
        m.d_conv,
        L,
        m.norm.eps,
        m.norm.group_size,
        block,
    )


@float32_under_autocast
def run_layer(X: Tensor, cf: Conf, params: Sequence[Optional[Tensor]]) -> Tensor:
    """X (K,b,T,D): input of mixer k in its own time order -> (K,b,T,D) outputs."""
    if _records_grad(X, params):
        return _Layer.apply(X, cf, *params)
    return _forward(X, cf, list(params), save=False)[0]


def _records_grad(x: Tensor, params: Sequence[Optional[Tensor]]) -> bool:
    """Whether autograd records this call; only then does the layer run as an autograd node, which
    keeps every block's intermediates for backward."""
    return torch.is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in params))


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


@float32_under_autocast
def run_directions(x: Tensor, reverse: Sequence[bool], cf: Conf, params: Sequence[Optional[Tensor]]) -> Tensor:
    """Full-length rows (no padding): sum over k of mixer k on x (b,T,D), read reversed in time where
    reverse[k]; equals run_layer on the stacked, reversed inputs with its outputs un-reversed and
    summed. Each mixer reads its blocks straight from x (reversing one block at a time) and adds its
    output, and in backward its input gradient, into one shared tensor in x's time order: no stacked
    inputs, whole-sequence reversed, padded or per-mixer copies, which cost ~5 % of a fwd+bwd at
    T=2000 and, on a long recording, a fresh mmap each whose pages fault in on first touch (2.6 GB
    of faults per 10-minute encode, measured, before this path)."""
    if _records_grad(x, params):
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
        dx, *grads = _backward(
            x.unsqueeze(0), ctx.cf, params, saved, dout.contiguous().unsqueeze(0), reverse=ctx.reverse
        )
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
class _Params(NamedTuple):
    """The K mixers' parameters as the layer uses them: stacked where small, listed per mixer where
    large (so that no large weight is copied)."""

    in_w: List[Tensor]  # in_proj weights, (d_inner + conv_dim + nheads, d_model) each
    in_b: List[Optional[Tensor]]  # in_proj biases, None for a mixer without
    conv_w: Tensor  # (Kc, K, 1, 1, cd): conv taps, tap first for the shifted multiply-adds
    conv_b: Optional[Tensor]  # (K, 1, 1, cd), zeros for a mixer without; None when no mixer has one
    dt_bias: Tensor  # (K, 1, 1, H), added to dt before the softplus
    A: Tensor  # (K, H), negative: -exp(A_log)
    D: Tensor  # (K, H), the skip weights
    norm_w: Tensor  # (K, di), the gated RMS norm's weights
    out_w: List[Tensor]  # out_proj weights, (d_model, d_inner) each
    out_b: List[Optional[Tensor]]  # out_proj biases, None for a mixer without


def _unpack(params, K: int) -> _Params:
    per = [params[i * PARAMS_PER_MIXER : (i + 1) * PARAMS_PER_MIXER] for i in range(K)]
    col = lambda j: [p[j] for p in per]  # noqa: E731
    conv_w = torch.stack([w[:, 0] for w in col(2)])  # (K, cd, Kc)
    conv_b = None
    if any(v is not None for v in col(3)):
        conv_b = torch.stack([v if v is not None else conv_w.new_zeros(conv_w.shape[1]) for v in col(3)])
        conv_b = conv_b[:, None, None]
    return _Params(
        col(0),
        col(1),
        conv_w.permute(2, 0, 1)[:, :, None, None],
        conv_b,
        torch.stack(col(4))[:, None, None],
        -torch.exp(torch.stack(col(5))),
        torch.stack(col(6)),
        torch.stack(col(7)),
        col(8),
        col(9),
    )


def _split(xBC: Tensor, cf: Conf, S: int, T: int):
    di, GN = cf.d_inner, cf.ngroups * cf.d_state
    xs = xBC[..., :di].view(S, T, cf.nheads, cf.headdim)
    Bm = xBC[..., di : di + GN].view(S, T, cf.ngroups, cf.d_state)
    Cm = xBC[..., di + GN :].view(S, T, cf.ngroups, cf.d_state)
    return xs, Bm, Cm


# ---- forward ---------------------------------------------------------------------------------
def _forward(X: Tensor, cf: Conf, params, save: bool, reverse: Optional[Sequence[bool]] = None):
    """Per block: zx = in_proj(x) (with the previous block's last Kc-1 rows above it, which the
    causal conv reads), u = conv(x, B, C), xBC = silu(u), dt = softplus(.), SSD scan, gated RMS
    norm, out_proj. The norm weight is folded into out_proj's weight. -> (Y, saved blocks).
    reverse None: X (K,b,T,D), mixer k reads X[k], Y (K,b,T,D). Else (full-length rows) X (1,b,T,D)
    is read by every mixer, reversed in time where reverse[k] (see read_rows), and Y (b,T,D) is the sum
    of their outputs in X's time order (see write_rows)."""
    K = len(params) // PARAMS_PER_MIXER
    _, b, T, Dm = X.shape
    p = _unpack(params, K)
    S, di, cd, H, Kc, L = K * b, cf.d_inner, cf.conv_dim, cf.nheads, cf.d_conv, cf.chunk_size
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
        zxh[:, :, : Kc - 1] = hist
        for k in range(K):
            linear_into(zxh[k, :, Kc - 1 : Kc - 1 + n], read_rows(X, k, s, n, reverse), p.in_w[k], p.in_b[k])
            if n < Tb:  # in_proj of the zero frames that pad the block to whole chunks
                if p.in_b[k] is None:
                    zxh[k, :, Kc - 1 + n :].zero_()
                else:
                    zxh[k, :, Kc - 1 + n :].copy_(p.in_b[k])
        hist = zxh[:, :, Tb:]
        zx = zxh[:, :, Kc - 1 :]
        u, xBC = causal_conv_silu(zxh[..., di : di + cd], p.conv_w, p.conv_b, _conv_rows(K, b))
        dt = F.softplus(zx[..., di + cd :] + p.dt_bias)
        xs, Bm, Cm = _split(xBC, cf, S, Tb)
        y, state, ssd_saved = chunk_forward(xs, dt.reshape(S, Tb, H), A_s, Bm, Cm, D_s, state, L, keep=save)
        y = y.view(K, b, Tb, di)
        sz = F.silu(zx[..., :di])
        gn = (y * sz).view(K, b, Tb, di // cf.group_size, cf.group_size)
        rstd = torch.linalg.vector_norm(gn, dim=-1, keepdim=True).square_().div_(cf.group_size).add_(cf.eps).rsqrt_()
        gn = gn.mul_(rstd).view(K, b, Tb, di)
        for k in range(K):
            write_rows(
                Y if written is not None else Y[k],
                s,
                n,
                bool(reverse and reverse[k]),
                gn[k, :, :n],
                out_w[k],
                out_b[k],
                written,
            )
        if save:
            saved.append((zxh, u, xBC, y, sz, gn, rstd, *ssd_saved))
    return Y, saved


# ---- causal depthwise conv and SiLU, in tiles of rows (conv.py) --------------------------------
# Measured on the 2-core CPU, 640 channels, 2048 frames: the conv's weight gradient takes 1.7 ms in
# tiles of 128 rows against 4.8 ms as whole-block BLAS products of channel tiles, and a whole
# BiMamba2 layer's fwd+bwd at T=2000 91-93 ms with tiles of 64-128 rows per sequence against 110 ms
# untiled. A tile holds CONV_ROWS rows over all sequences, so each op stays about that size.
CONV_ROWS = 256


def _conv_rows(K: int, b: int) -> int:
    """Rows per conv tile of each of the K*b sequences (CONV_ROWS is read at call time)."""
    return max(1, CONV_ROWS // (K * b))


# ---- backward --------------------------------------------------------------------------------


def _backward(X: Tensor, cf: Conf, params, saved, dY: Tensor, reverse: Optional[Sequence[bool]] = None):
    """Gradients [dX, *parameter grads] of _forward, dX shaped as its Y; dY laid out as X (see read_rows)."""
    K = len(params) // PARAMS_PER_MIXER
    _, b, T, Dm = X.shape
    p = _unpack(params, K)
    S, di, cd, H, Kc, L, P = K * b, cf.d_inner, cf.conv_dim, cf.nheads, cf.d_conv, cf.chunk_size, cf.headdim
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
        zx = zxh[:, :, Kc - 1 :]
        z = zx[..., :di]
        dzxh = X.new_empty(K, b, Kc - 1 + Tb, Din)
        dzx = dzxh[:, :, Kc - 1 :]

        # out_proj and gated RMS norm: out = (g * rstd) @ (out_w * norm_w)^T, g = y * silu(z)
        n = min(e, T) - s  # padding frames after them have zero output gradient
        gu = X.new_empty(K, b, Tb, di)
        for k in range(K):
            dYb = read_rows(dY, k, s, n, reverse)
            d2 = dYb.reshape(-1, Dm)
            g_outn[k].addmm_(d2.t(), gn[k, :, :n].reshape(-1, di))
            if g_out_b[k] is not None:
                g_out_b[k] += d2.sum(0)
            mm_into(gu[k, :, :n], dYb, out_w[k])
        gu[:, :, n:].zero_()
        gu5 = gu.view(K, b, Tb, -1, cf.group_size)
        gn5 = gn.view(K, b, Tb, -1, cf.group_size)
        m = rowdot(gu5, gn5).unsqueeze(-1).div_(cf.group_size)
        dg = gu5.addcmul_(gn5, m, value=-1).mul_(rstd).view(K, b, Tb, di)
        dy_ssd = dg * sz
        torch.ops.aten.silu_backward.grad_input(dg.mul_(y), z, grad_input=dzx[..., :di])
        del gu, gu5, gn5, m, dg

        # SSD scan; its input gradients land in the conv-output gradient buffer
        dt_raw = zx[..., di + cd :] + p.dt_bias
        dt = F.softplus(dt_raw)
        xs, Bm, Cm = _split(xBC, cf, S, Tb)
        du = X.new_empty(K, b, Tb, cd)
        dxs, dBm, dCm = _split(du, cf, S, Tb)
        _, ddt, dA, _, _, dD, dstate = chunk_backward(
            xs,
            dt.reshape(S, Tb, H),
            A_s,
            Bm,
            Cm,
            D_s,
            y.view(S, Tb, H, P),
            ssd_saved,
            dy_ssd.view(S, Tb, H, P),
            dstate,
            L,
            out=(dxs, dBm, dCm),
        )
        del dy_ssd
        g_A += dA.view(K, b, H).sum(1)
        g_D += dD.view(K, b, H).sum(1)
        ddt_raw = torch.mul(ddt.view(K, b, Tb, H), torch.sigmoid(dt_raw), out=dzx[..., di + cd :])
        g_dt_bias += ddt_raw.sum((1, 2))

        # silu and causal depthwise conv over the rows above the block too
        dxpad = dzxh[..., di : di + cd]
        causal_conv_silu_backward(
            du,
            u,
            zxh[..., di : di + cd],
            p.conv_w,
            dxpad,
            g_conv_w,
            g_conv_b if p.conv_b is not None else None,
            _conv_rows(K, b),
        )
        del du
        if dtail is not None:
            dxpad[:, :, Tb:] += dtail
        dtail = dxpad[:, :, : Kc - 1].clone()

        # padding frames: zero input, and nothing valid reads them (their dzx is zero)
        for k in range(K):
            d2 = dzx[k, :, :n].reshape(-1, Din)
            g_in_w[k].addmm_(d2.t(), read_rows(X, k, s, n, reverse).reshape(-1, Dm))
            if g_in_b[k] is not None:
                g_in_b[k] += d2.sum(0)
            write_rows(
                dX if written is not None else dX[k],
                s,
                n,
                bool(reverse and reverse[k]),
                dzx[k, :, :n],
                p.in_w[k].t(),
                None,
                written,
            )
        del dzxh, dzx

    g_A_log = g_A * p.A  # A = -exp(A_log)
    grads: List[Optional[Tensor]] = [dX]
    for k in range(K):
        conv_b_grad = g_conv_b[k] if params[k * PARAMS_PER_MIXER + 3] is not None else None
        g_norm = (g_outn[k] * p.out_w[k]).sum(0)
        grads += [
            g_in_w[k],
            g_in_b[k],
            g_conv_w[:, k].t().unsqueeze(1),
            conv_b_grad,
            g_dt_bias[k],
            g_A_log[k],
            g_D[k],
            g_norm,
            g_outn[k] * p.norm_w[k],
            g_out_b[k],
        ]
    return grads
