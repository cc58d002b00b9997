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
loop over k around each matmul, so no weight is copied."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait
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
    return _layer_forward(X, cf, list(params), save=False)[0]


def _save(ctx, first: Tensor, params: Sequence[Optional[Tensor]], saved: list) -> None:
    """Keep the input, the parameters present and every block's saved tensors for backward, through
    save_for_backward, so autograd frees them after a backward without retain_graph."""
    ctx.present = [p is not None for p in params]
    ctx.shape = [[len(blk) for blk in blocks] for blocks in saved]
    flat = [t for blocks in saved for blk in blocks for t in blk]
    ctx.save_for_backward(first, *[p for p in params if p is not None], *flat)


def _restore(ctx):
    """-> (input, parameters with None where absent, saved blocks), as _save left them."""
    first, *rest = ctx.saved_tensors
    n_par = sum(ctx.present)
    it = iter(rest[:n_par])
    params = [next(it) if has else None for has in ctx.present]
    flat = iter(rest[n_par:])
    return first, params, [[[next(flat) for _ in range(n)] for n in blocks] for blocks in ctx.shape]


def run_directions(x: Tensor, reverse: Sequence[bool], cf: Conf, params: Sequence[Optional[Tensor]]) -> Tensor:
    """Full-length rows (no padding): sum over k of mixer k on x (b,T,D), read reversed in time where
    reverse[k]; equals run_layer on the stacked, reversed inputs with its outputs un-reversed and
    summed. Each mixer reads its blocks straight from x (reversing one block at a time) and writes its
    output, and in backward its input gradient, in x's time order: no stacked inputs, whole-sequence
    reversed copies or padded copies, which cost ~5 % of a fwd+bwd at T=2000 and, on a long
    recording, a fresh mmap each whose pages fault in on first touch (2.6 GB of faults per 10-minute
    encode, measured, before this path)."""
    if torch.is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in params)):
        return _FullRows.apply(x, tuple(reverse), cf, *params)
    return _full_rows_forward(x, reverse, cf, list(params), save=False)[0]


def _full_rows_forward(x: Tensor, reverse: Sequence[bool], cf: Conf, params: list, save: bool):
    K = len(reverse)
    X = x.unsqueeze(0)
    Ys = [x.new_empty((1,) + tuple(x.shape)) for _ in range(K)]

    def run(ks):  # one mixer per _forward call: reverse differs between them
        return [_forward(X, cf, _sub(params, [k]), save, Y=Ys[k], reverse=reverse[k])[1] for k in ks]

    saved = [blocks for group in _map(run, _groups(K)) for blocks in group]
    out = Ys[0][0]
    for y in Ys[1:]:
        out.add_(y[0])
    return out, saved


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
        K = len(ctx.reverse)
        X, dY = x.unsqueeze(0), dout.contiguous().unsqueeze(0)
        dXs = [x.new_empty((1,) + tuple(x.shape)) for _ in range(K)]

        def run(ks):
            return [_backward(X, ctx.cf, _sub(params, [k]), saved[k], dY, dX=dXs[k], reverse=ctx.reverse[k])[1:]
                    for k in ks]

        grads = [g for group in _map(run, _groups(K)) for gk in group for g in gk]
        dx = dXs[0][0]
        for d in dXs[1:]:
            dx.add_(d[0])
        return (dx, None, None, *grads)


class _Layer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, cf, *params):
        Y, saved = _layer_forward(X, cf, list(params), save=True)
        ctx.cf = cf
        _save(ctx, X, params, saved)
        return Y

    @staticmethod
    def backward(ctx, dY):
        X, params, saved = _restore(ctx)
        grads = _layer_backward(X, ctx.cf, params, saved, dY.contiguous())
        return (grads[0], None, *grads[1:])


# ---- the K mixers: fused into shared ops, or one per thread ----------------------------------
# With K mixers (a bidirectional layer: K=2) and at least K intra-op threads, each mixer runs in
# its own thread with 1/K of the threads. The mixers share nothing until their outputs are summed,
# and most of a block's work is short memory-bound ops over (frames x channels) tensors, which two
# threads splitting each op run at ~1.4x one thread (measured: 143 vs 100 us of CPU per frame on
# the 2-core CPU), while two ops side by side on one thread each need no synchronisation.
DIRECTION_THREADS = True
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_PID = 0


def _groups(K: int) -> List[List[int]]:
    n = torch.get_num_threads()
    if DIRECTION_THREADS and K > 1 and n >= K:
        return [[k] for k in range(K)]
    return [list(range(K))]


def _map(fn, items: list) -> list:
    """[fn(i) for i in items], one thread each when there are several (the first on the calling
    thread, so no more threads than intra-op threads are busy), splitting the caller's intra-op
    threads among them; autograd stays off, as in the calling Function."""
    if len(items) == 1:
        return [fn(items[0])]
    global _POOL, _POOL_PID
    if _POOL is None or _POOL._max_workers < len(items) - 1 or _POOL_PID != os.getpid():
        # a pool inherited through fork has no threads in the child: make a new one there
        _POOL = ThreadPoolExecutor(max_workers=len(items) - 1, thread_name_prefix="mamba2-mixer")
        _POOL_PID = os.getpid()
    before = torch.get_num_threads()
    per = max(1, before // len(items))
    inference = torch.is_inference_mode_enabled()  # thread-local: carried into the workers

    def task(i):
        torch.set_num_threads(per)
        with torch.inference_mode() if inference else torch.no_grad():
            return fn(i)

    futures = [_POOL.submit(task, i) for i in items[1:]]
    try:
        first = task(items[0])
    except BaseException:
        wait(futures)
        raise
    finally:
        torch.set_num_threads(before)
    return [first] + [f.result() for f in futures]


def _sub(params: Sequence, ks: List[int]) -> list:
    return list(params[ks[0] * PARAMS_PER_MIXER:(ks[-1] + 1) * PARAMS_PER_MIXER])


def _layer_forward(X: Tensor, cf: Conf, params: list, save: bool):
    Y = X.new_empty(X.shape)
    groups = _groups(X.shape[0])

    def run(ks):
        sl = slice(ks[0], ks[-1] + 1)
        return _forward(X[sl], cf, _sub(params, ks), save, Y=Y[sl])[1]

    return Y, _map(run, groups)


def _layer_backward(X: Tensor, cf: Conf, params: list, saved: list, dY: Tensor) -> list:
    dX = X.new_empty(X.shape)
    groups = _groups(X.shape[0])
    if len(groups) != len(saved):  # thread count changed between forward and backward
        groups = [[k] for k in range(X.shape[0])] if len(saved) > 1 else [list(range(X.shape[0]))]

    def run(i):
        ks = groups[i]
        sl = slice(ks[0], ks[-1] + 1)
        return _backward(X[sl], cf, _sub(params, ks), saved[i], dY[sl], dX=dX[sl])[1:]

    grads = [dX]
    for g in _map(run, list(range(len(groups)))):
        grads += g
    return grads


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


def _rows(X: Tensor, s: int, n: int, reverse: bool) -> Tensor:
    """Frames [s, s+n) of X (K,b,T,D) in the mixers' reading order: a view, or when reverse (full-length
    rows) frames [T-s-n, T-s) reversed, a block-sized copy."""
    T = X.shape[2]
    return X[:, :, T - s - n:T - s].flip(2) if reverse else X[:, :, s:s + n]


def _write_rows(out: Tensor, s: int, n: int, reverse: bool, a: Tensor, w: Tensor,
                bias: Optional[Tensor] = None) -> None:
    """out (b,T,n_out) frames [s, s+n) in reading order = a (b,n,m) @ w^T (+ bias); when reverse,
    written to frames [T-s-n, T-s) reversed."""
    T = out.shape[1]
    if reverse:
        out[:, T - s - n:T - s].copy_(F.linear(a, w, bias).flip(1))
    else:
        _linear_into(out[:, s:s + n], a, w, bias)


def _split(xBC: Tensor, cf: Conf, S: int, T: int):
    di, GN = cf.di, cf.G * cf.N
    xs = xBC[..., :di].view(S, T, cf.H, cf.P)
    Bm = xBC[..., di:di + GN].view(S, T, cf.G, cf.N)
    Cm = xBC[..., di + GN:].view(S, T, cf.G, cf.N)
    return xs, Bm, Cm


# ---- forward ---------------------------------------------------------------------------------
def _forward(X: Tensor, cf: Conf, params, save: bool, Y: Optional[Tensor] = None, reverse: bool = False):
    """Per block: zx = in_proj(x) (with the previous block's last Kc-1 rows above it, which the
    causal conv reads), u = conv(x, B, C), xBC = silu(u), dt = softplus(.), SSD scan, gated RMS
    norm, out_proj. The norm weight is folded into out_proj's weight. reverse (full-length rows
    only): the mixers read X reversed in time and Y is written back in X's time order."""
    K, b, T, Dm = X.shape
    p = _unpack(params, K)
    S, di, cd, H, Kc, L = K * b, cf.di, cf.cd, cf.H, cf.Kc, cf.L
    Din = di + cd + H
    Tp = -(-T // L) * L
    A_s, D_s = p.A.repeat_interleave(b, 0), p.D.repeat_interleave(b, 0)
    out_w = [p.out_w[k] * p.norm_w[k] for k in range(K)]
    Y = X.new_empty(K, b, T, Dm) if Y is None else Y
    hist = X.new_zeros(K, b, Kc - 1, Din)
    state = None
    saved = []
    for s in range(0, Tp, cf.block):
        e = min(s + cf.block, Tp)
        Tb = e - s
        n = min(e, T) - s  # frames of the sequence in this block; the rest pads it to whole chunks
        Xb = _rows(X, s, n, reverse)
        zxh = X.new_empty(K, b, Kc - 1 + Tb, Din)
        zxh[:, :, :Kc - 1] = hist
        for k in range(K):
            _linear_into(zxh[k, :, Kc - 1:Kc - 1 + n], Xb[k], p.in_w[k], p.in_b[k])
            if n < Tb:  # in_proj of the zero frames that pad the block to whole chunks
                if p.in_b[k] is None:
                    zxh[k, :, Kc - 1 + n:].zero_()
                else:
                    zxh[k, :, Kc - 1 + n:].copy_(p.in_b[k])
        hist = zxh[:, :, Tb:]
        zx = zxh[:, :, Kc - 1:]
        xpad = zxh[..., di:di + cd]
        if p.conv_b is None:
            u = torch.mul(xpad[:, :, Kc - 1:], p.conv_w[Kc - 1])
        else:
            u = torch.addcmul(p.conv_b, xpad[:, :, Kc - 1:], p.conv_w[Kc - 1])
        for j in range(Kc - 1):
            u.addcmul_(xpad[:, :, j:j + Tb], p.conv_w[j])
        xBC = F.silu(u)
        dt = F.softplus(zx[..., di + cd:] + p.dt_bias)
        xs, Bm, Cm = _split(xBC, cf, S, Tb)
        y, state, ssd_saved = chunk_forward(xs, dt.reshape(S, Tb, H), A_s, Bm, Cm, D_s, state, L, keep=save)
        y = y.view(K, b, Tb, di)
        sz = F.silu(zx[..., :di])
        gn = (y * sz).view(K, b, Tb, di // cf.gs, cf.gs)
        rstd = torch.linalg.vector_norm(gn, dim=-1, keepdim=True).square_().div_(cf.gs).add_(cf.eps).rsqrt_()
        gn = gn.mul_(rstd).view(K, b, Tb, di)
        for k in range(K):
            _write_rows(Y[k], s, n, reverse, gn[k, :, :n], out_w[k], p.out_b[k])
        if save:
            saved.append((zxh, u, xBC, y, sz, gn, rstd, *ssd_saved))
    return Y, saved


# ---- backward --------------------------------------------------------------------------------
CONV_TILE = 16  # channels per tile in _conv_weight_grad


def _conv_weight_grad(acc: Tensor, du: Tensor, xpad: Tensor) -> None:
    """acc[j, k, c] += sum over (row, t) of du[k, row, t, c] * xpad[k, row, t + j, c].

    As products of channel tiles, (tile x T) @ (T x tile), keeping the diagonal: 16x the
    multiply-adds of the elementwise form, but read once by BLAS instead of written and reread
    per tap; measured 2x faster for 640 channels on the 2-core CPU. Many rows would mean many
    small calls, so beyond a few the elementwise form is used."""
    Kc = xpad.shape[2] - du.shape[2] + 1
    K, b, T, cd = du.shape
    if cd % CONV_TILE or K * b > 4:
        for j in range(Kc):
            acc[j] += (du * xpad[:, :, j:j + T]).sum((1, 2))
        return
    nt = cd // CONV_TILE
    for k in range(K):
        for i in range(b):
            a = du[k, i].unflatten(1, (nt, CONV_TILE)).permute(1, 2, 0)  # (nt, tile, T)
            for j in range(Kc):
                bj = xpad[k, i, j:j + T].unflatten(1, (nt, CONV_TILE)).transpose(0, 1)  # (nt, T, tile)
                acc[j, k] += torch.bmm(a, bj).diagonal(dim1=1, dim2=2).reshape(cd)


def _backward(X: Tensor, cf: Conf, params, saved, dY: Tensor, dX: Optional[Tensor] = None, reverse: bool = False):
    K, b, T, Dm = X.shape
    p = _unpack(params, K)
    S, di, cd, H, Kc, L, P = K * b, cf.di, cf.cd, cf.H, cf.Kc, cf.L, cf.P
    Din = di + cd + H
    Tp = -(-T // L) * L
    A_s, D_s = p.A.repeat_interleave(b, 0), p.D.repeat_interleave(b, 0)
    out_w = [p.out_w[k] * p.norm_w[k] for k in range(K)]
    dY = dY.contiguous()
    dX = X.new_empty(K, b, T, Dm) if dX is None else dX
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
        dYb = _rows(dY, s, n, reverse)
        gu = X.new_empty(K, b, Tb, di)
        for k in range(K):
            d2 = dYb[k].reshape(-1, Dm)
            g_outn[k].addmm_(d2.t(), gn[k, :, :n].reshape(-1, di))
            if g_out_b[k] is not None:
                g_out_b[k] += d2.sum(0)
            _mm_into(gu[k, :, :n], dYb[k], out_w[k])
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
        torch.ops.aten.silu_backward.grad_input(du, u, grad_input=du)
        if p.conv_b is not None:
            g_conv_b += du.sum((1, 2))
        xpad = zxh[..., di:di + cd]
        dxpad = dzxh[..., di:di + cd]
        torch.mul(du, p.conv_w[Kc - 1], out=dxpad[:, :, Kc - 1:])
        dxpad[:, :, :Kc - 1].zero_()
        _conv_weight_grad(g_conv_w, du, xpad)
        for j in range(Kc - 1):
            dxpad[:, :, j:j + Tb].addcmul_(du, p.conv_w[j])
        del du
        if dtail is not None:
            dxpad[:, :, Tb:] += dtail
        dtail = dxpad[:, :, :Kc - 1].clone()

        # padding frames: zero input, and nothing valid reads them (their dzx is zero)
        Xb = _rows(X, s, n, reverse)
        for k in range(K):
            d2 = dzx[k, :, :n].reshape(-1, Din)
            g_in_w[k].addmm_(d2.t(), Xb[k].reshape(-1, Dm))
            if g_in_b[k] is not None:
                g_in_b[k] += d2.sum(0)
            _write_rows(dX[k], s, n, reverse, dzx[k, :, :n], p.in_w[k].t())
        del dzxh, dzx

    g_A_log = g_A * p.A  # A = -exp(A_log)
    grads: List[Optional[Tensor]] = [dX]
    for k in range(K):
        conv_b_grad = g_conv_b[k] if params[k * PARAMS_PER_MIXER + 3] is not None else None
        g_norm = (g_outn[k] * p.out_w[k]).sum(0)
        grads += [g_in_w[k], g_in_b[k], g_conv_w[:, k].t().unsqueeze(1), conv_b_grad, g_dt_bias[k],
                  g_A_log[k], g_D[k], g_norm, g_outn[k] * p.norm_w[k], g_out_b[k]]
    return grads
