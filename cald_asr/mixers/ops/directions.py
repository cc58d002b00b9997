"""K same-shaped mixers of one kind on one input in one pass: mixer k reads each sequence forward,
or reversed within its valid length where reverse[k], and their outputs are summed. A Mamba or
Mamba2 forward is K=1; Bidirectional fuses its two directions through these (K=2).

mamba_directions and mamba2_directions_wide treat the K mixers as one wide mixer (in_proj, conv and
out_proj as one product each, the scan over all mixers' channels at once); mamba2_directions runs
the blocked Mamba2 layer (mamba2_blocked) instead, except with mamba-ssm's kernels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .conv import causal_depthwise_conv
from .cuda_kernels import selective_scan_kernel, ssd_kernel, want_kernels
from .mamba2_blocked import conf_of, mixer_params, run_directions, run_layer
from .masking import check_lengths, none_if_full, reverse_index, reverse_time, valid_mask
from .norm import gated_rms
from .selective_scan import selective_scan
from .ssd import ssd_scan

if TYPE_CHECKING:
    from ..mamba import Mamba
    from ..mamba2 import Mamba2


def mamba_directions(mods: Sequence[Mamba], reverse: Sequence[bool], x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Run K same-shaped Mamba mixers on x at once and sum their outputs; mixer k reads each
    sequence reversed within its valid length when reverse[k]. The K mixers become one Mamba with
    K*d_inner channels in K groups, so the scan runs once for all directions."""
    m0 = mods[0]
    K = len(mods)
    b, T, _ = x.shape
    lengths = none_if_full(check_lengths(lengths, b, T), T)
    x, mask = _zero_padding(x, lengths)
    di, N, R = m0.d_inner, m0.d_state, m0.dt_rank

    xz, index = _wide_in_proj(mods, x, reverse, lengths)
    xs, z = xz.split([di, di], dim=-1)
    xs = _wide_conv_silu(mods, xs)
    dbc = _per_mixer_linear(xs, [m.x_proj.weight for m in mods])
    dt, Bm, Cm = dbc.split([R, N, N], dim=-1)
    dt = _per_mixer_linear(dt, [m.dt_proj.weight for m in mods]).reshape(b, T, K * di)
    dt_bias = torch.cat([m.dt_proj.bias for m in mods])
    A = -torch.exp(torch.cat([m.A_log for m in mods]))
    D = torch.cat([m.D for m in mods])
    u = xs.reshape(b, T, K * di)
    if want_kernels(m0.use_kernels, x):
        y = selective_scan_kernel(u, dt, A, Bm, Cm, D, dt_bias)
    else:
        y = selective_scan(u, F.softplus(dt + dt_bias), A, Bm, Cm, D, block_size=m0.block_size)
    y = y.view(b, T, K, di) * F.silu(z)
    return _wide_out_proj(mods, y, index, mask)


def mamba2_directions(mods: Sequence[Mamba2], reverse: Sequence[bool], x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Run K same-shaped Mamba2 mixers on x at once and sum their outputs; mixer k reads each
    sequence reversed within its valid length when reverse[k]. The K mixers run as one hand-written
    autograd node over blocks of time (mamba2_blocked); with mamba-ssm's kernels, as one wide Mamba2
    through them (mamba2_directions_wide)."""
    if want_kernels(mods[0].use_kernels, x):
        return mamba2_directions_wide(mods, reverse, x, lengths, use_kernels=True)
    b, T, _ = x.shape
    lengths = none_if_full(check_lengths(lengths, b, T), T)
    params = [p for m in mods for p in mixer_params(m)]
    if lengths is None:  # no padding: no stacked or reversed whole-sequence copies (see run_directions)
        return run_directions(x, reverse, conf_of(mods[0]), params)
    # padding is read by nothing valid (it comes after each row's frames in both directions)
    x, mask = _zero_padding(x, lengths)
    inputs = [reverse_time(x, lengths) if r else x for r in reverse]
    X = torch.stack(inputs) if len(inputs) > 1 else inputs[0].unsqueeze(0)
    Y = run_layer(X, conf_of(mods[0]), params)
    out = None
    for yk, r in zip(Y.unbind(0), reverse):  # unbind: one backward node, no zero-filled grads
        yk = reverse_time(yk, lengths) if r else yk
        out = yk if out is None else out + yk
    if mask is not None:
        out = out.masked_fill(~mask.unsqueeze(-1), 0.0)
    return out


def mamba2_directions_wide(
    mods: Sequence[Mamba2], reverse: Sequence[bool], x: Tensor, lengths: Optional[Tensor], use_kernels: bool
) -> Tensor:
    """Same result as mamba2_directions, composed of autograd-tracked tensor ops: the K mixers
    become one wide Mamba2 with K*heads heads and K*groups groups (the SSD grouping keeps each
    mixer's heads on its own B, C), time-reversed inputs gathered. The path for mamba-ssm's
    kernels, and the reference the hand-written layer is tested against."""
    m0 = mods[0]
    K = len(mods)
    b, T, _ = x.shape
    lengths = check_lengths(lengths, b, T)
    x, mask = _zero_padding(x, lengths)
    H, G, N, P, di, cd = m0.nheads, m0.ngroups, m0.d_state, m0.headdim, m0.d_inner, m0.conv_dim

    zxbcdt, index = _wide_in_proj(mods, x, reverse, lengths)
    z, xBC, dt_raw = zxbcdt.split([di, cd, H], dim=-1)
    xBC = _wide_conv_silu(mods, xBC)
    xs, Bm, Cm = xBC.split([di, G * N, G * N], dim=-1)
    xs = xs.reshape(b, T, K * H, P)
    Bm = Bm.reshape(b, T, K * G, N)
    Cm = Cm.reshape(b, T, K * G, N)
    dt_raw = dt_raw.reshape(b, T, K * H)
    cat = (lambda ps: torch.cat(list(ps))) if K > 1 else (lambda ps: next(iter(ps)))
    dt_bias = cat(m.dt_bias for m in mods)
    A = -torch.exp(cat(m.A_log for m in mods))
    D = cat(m.D for m in mods)
    if use_kernels:
        y = ssd_kernel(xs, dt_raw, A, Bm, Cm, m0.chunk_size, D, dt_bias)
    else:
        dt = F.softplus(dt_raw + dt_bias)
        y = ssd_scan(xs, dt, A, Bm, Cm, m0.chunk_size, D=D)
    norm_w = cat(m.norm.weight for m in mods).view(K, di)
    y = gated_rms(y.reshape(b, T, K, di), z, norm_w, m0.norm.group_size, m0.norm.eps)
    return _wide_out_proj(mods, y, index, mask)


# ---- the pieces both wide mixers share -----------------------------------------------------------
def _cat_bias(layers: Sequence[nn.Module]) -> Optional[Tensor]:
    """Concatenated biases of Linear/Conv layers, zeros for those without; None if all lack one."""
    if all(layer.bias is None for layer in layers):
        return None
    return torch.cat(
        [layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.weight.shape[0]) for layer in layers]
    )


def _zero_padding(x: Tensor, lengths: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    """-> (x with padded frames set to zero, the (b,T) validity mask or None). Causal mixers never
    read padding into valid frames; zeroing keeps inf/nan in padding from leaking through 0 * inf
    inside the products (the chunked matmuls)."""
    mask = valid_mask(lengths, x.shape[1], x.device)
    if mask is not None:
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    return x, mask


def _wide_in_proj(
    mods: Sequence[nn.Module], x: Tensor, reverse: Sequence[bool], lengths: Optional[Tensor]
) -> Tuple[Tensor, Optional[Tensor]]:
    """Every mixer's in_proj as one product -> (b,T,K,out) with mixer k's output in slot k, in its
    reading order; and the (b,T,K) time index that put it there (None when no mixer reverses)."""
    m0 = mods[0]
    K = len(mods)
    b, T, _ = x.shape
    w_in = torch.cat([m.in_proj.weight for m in mods]) if K > 1 else m0.in_proj.weight
    b_in = _cat_bias([m.in_proj for m in mods]) if K > 1 else m0.in_proj.bias
    h = F.linear(x, w_in, b_in).view(b, T, K, -1)
    index = None
    if any(reverse):
        rev = reverse_index(lengths, b, T, x.device)
        fwd = torch.arange(T, device=x.device).expand(b, T)
        index = torch.stack([rev if r else fwd for r in reverse], dim=2)  # (b,T,K)
        h = h.gather(1, index.unsqueeze(-1).expand_as(h))
    return h, index


def _wide_conv_silu(mods: Sequence[nn.Module], u: Tensor) -> Tensor:
    """u (b,T,K,C) -> silu(causal conv1d), slot k through mixer k's conv, all slots in one pass."""
    m0 = mods[0]
    b, T, K, C = u.shape
    conv_w = torch.cat([m.conv1d.weight for m in mods]) if K > 1 else m0.conv1d.weight
    conv_b = _cat_bias([m.conv1d for m in mods]) if K > 1 else m0.conv1d.bias
    return F.silu(causal_depthwise_conv(u.reshape(b, T, K * C), conv_w, conv_b)).view(b, T, K, C)


def _per_mixer_linear(x: Tensor, weights: Sequence[Tensor]) -> Tensor:
    """x (b,T,K,i) with mixer k's features in slot k -> (b,T,K,o), each slot through its own
    weight (o,i): one batched matmul over K."""
    if len(weights) == 1:
        return F.linear(x, weights[0])
    b, T, K, _ = x.shape
    w = torch.stack(list(weights))  # (K,o,i)
    y = x.reshape(b * T, K, -1).transpose(0, 1) @ w.transpose(1, 2)  # (K, bT, o)
    return y.transpose(0, 1).reshape(b, T, K, -1)


def _wide_out_proj(mods: Sequence[nn.Module], y: Tensor, index: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
    """y (b,T,K,d_inner), slot k in mixer k's reading order -> sum over k of mixer k's out_proj, in
    x's time order (one product), zero on padding."""
    m0 = mods[0]
    b, T, K, di = y.shape
    if index is not None:
        y = y.gather(1, index.unsqueeze(-1).expand_as(y))  # reversal is its own inverse
    w_out = torch.cat([m.out_proj.weight for m in mods], dim=1) if K > 1 else m0.out_proj.weight
    b_out = None
    if any(m.out_proj.bias is not None for m in mods):
        b_out = sum(m.out_proj.bias for m in mods if m.out_proj.bias is not None)
    out = F.linear(y.reshape(b, T, K * di), w_out, b_out)
    if mask is not None:
        out = out.masked_fill(~mask.unsqueeze(-1), 0.0)
    return out
