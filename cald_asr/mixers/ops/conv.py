"""Causal depthwise convolution along time, in the three forms the Mamba blocks run it:
causal_depthwise_conv (token-major (B, T, C), autograd-tracked), causal_conv_silu and its
hand-written backward (the blocked Mamba2 layer's (K, b, T, C) layout, in tiles of rows), and
causal_conv_step (one frame, for recurrent inference). Weights keep nn.Conv1d(groups=C)'s layout.

All are written as d_conv shifted multiply-adds: for the short kernels Mamba uses (4) this avoids the
two layout transposes around F.conv1d and its slow depthwise backward on CPU (measured: the oneDNN
depthwise backward took more time than the whole SSD scan at T=8000)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def causal_depthwise_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """x (b,T,C); weight (C,1,K) as in nn.Conv1d(groups=C); y_t = bias + sum_k w[k] x_{t-K+1+k}."""
    T, K = x.shape[1], weight.shape[-1]
    w = weight[:, 0].t()  # (K, C)
    xp = F.pad(x, (0, 0, K - 1, 0))
    y = xp[:, K - 1 : K - 1 + T] * w[K - 1]
    if bias is not None:
        y = y + bias
    for k in range(K - 1):
        y = torch.addcmul(y, xp[:, k : k + T], w[k])
    return y


def causal_conv_step(window: Tensor, x_t: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """One frame of causal_depthwise_conv: window (B,C,K-1) holds the last K-1 inputs, x_t (B,C)
    -> (y_t (B,C), the window for the next frame)."""
    window = torch.cat([window, x_t.unsqueeze(-1)], dim=-1)
    y = (window * weight[:, 0]).sum(-1)
    if bias is not None:
        y = y + bias
    return y, window[..., 1:]


# ---- conv and SiLU in tiles of rows, forward and backward by hand (the blocked Mamba2 layer) ----
# The conv is Kc shifted multiply-adds over (frames x channels) and its backward twice that plus
# the weight gradient: a dozen memory-bound passes. Done a tile of rows at a time, a tile's
# operands stay in cache between passes, where whole-block passes stream each from L3 or memory.
# The caller picks the tile size (mamba2_blocked.CONV_ROWS, where it is measured).


def _windows(xpad: Tensor, s: int, n: int, Kc: int) -> Tensor:
    """(K,b,Kc,n,cd) view: window j = xpad rows [s+j, s+j+n). xpad's time stride is reused for
    the window axis, so no copy."""
    K, b, _, cd = xpad.shape
    st = xpad.stride()
    return xpad.as_strided((K, b, Kc, n, cd), (st[0], st[1], st[2], st[2], st[3]), xpad.storage_offset() + s * st[2])


def causal_conv_silu(xpad: Tensor, w: Tensor, bias: Optional[Tensor], rows: int):
    """xpad (K,b,Kc-1+T,cd) (the Kc-1 rows before the block on top), w (Kc,K,1,1,cd), bias
    (K,1,1,cd) -> u = causal conv (K,b,T,cd), silu(u); computed `rows` frames at a time."""
    Kc = w.shape[0]
    K, b, Tpad, cd = xpad.shape
    T = Tpad - Kc + 1
    u = xpad.new_empty(K, b, T, cd)
    act = torch.empty_like(u)
    R = rows
    for s in range(0, T, R):
        e = min(s + R, T)
        us = u[:, :, s:e]
        if bias is None:
            torch.mul(xpad[:, :, s + Kc - 1 : e + Kc - 1], w[Kc - 1], out=us)
        else:
            torch.addcmul(bias, xpad[:, :, s + Kc - 1 : e + Kc - 1], w[Kc - 1], out=us)
        for j in range(Kc - 1):
            us.addcmul_(xpad[:, :, s + j : e + j], w[j])
        torch.ops.aten.silu.out(us, out=act[:, :, s:e])
    return u, act


def causal_conv_silu_backward(
    dact: Tensor, u: Tensor, xpad: Tensor, w: Tensor, dxpad: Tensor, g_w: Tensor, g_b: Optional[Tensor], rows: int
) -> None:
    """Backward of causal_conv_silu, in tiles of `rows` frames. dact (K,b,T,cd) holds d silu(u) and
    is overwritten with du; writes dxpad (shaped as xpad) and adds the weight gradient to g_w
    (Kc,K,cd) and the bias gradient to g_b (K,cd). A row of dxpad collects taps from this tile and
    the next Kc-2: it is set by the tile that first reaches it (tap Kc-1) and added to by later
    taps, in order."""
    Kc = w.shape[0]
    K, b, T, cd = dact.shape
    R = rows
    dxpad[:, :, : Kc - 1].zero_()
    prods = dact.new_empty(K, b, Kc, min(R, T), cd)
    for s in range(0, T, R):
        e = min(s + R, T)
        d = dact[:, :, s:e]
        torch.ops.aten.silu_backward.grad_input(d, u[:, :, s:e], grad_input=d)
        if g_b is not None:
            g_b += d.sum((1, 2))
        torch.mul(d, w[Kc - 1], out=dxpad[:, :, s + Kc - 1 : e + Kc - 1])
        for j in range(Kc - 1):
            dxpad[:, :, s + j : e + j].addcmul_(d, w[j])
        pr = prods[:, :, :, : e - s]
        torch.mul(d.unsqueeze(2), _windows(xpad, s, e - s, Kc), out=pr)
        g_w += pr.sum((1, 3)).transpose(0, 1)
