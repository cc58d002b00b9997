"""Mamba2 block (Dao & Gu 2024, section 7): one input projection to (z, x, B, C, dt), depthwise
causal conv over (x, B, C), SiLU, SSD scan with one scalar A per head, D skip, RMSNorm gated by z,
output projection. Parameter names and shapes follow mamba-ssm's Mamba2 so weights interchange."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .conv import causal_depthwise_conv
from .kernels import ssd_kernel, want_kernels
from .mamba2_layer import conf_of, mixer_params, run_directions, run_layer
from .masking import check_lengths, none_if_full, reverse_index, reverse_time, valid_mask
from .ssd import DEFAULT_CHUNK, ssd_scan


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * silu(z)) * weight, normalised within groups of `group_size` channels."""

    def __init__(self, d: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.group_size = group_size
        self.eps = eps


def _gated_rms(y: Tensor, z: Tensor, weight: Tensor, group_size: int, eps: float) -> Tensor:
    y = y * F.silu(z)
    shape = y.shape
    y = y.reshape(*shape[:-1], shape[-1] // group_size, group_size)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)
    return y.reshape(shape) * weight


def init_dt_bias(n: int, dt_min: float, dt_max: float, floor: float) -> Tensor:
    """Bias whose softplus is log-uniform in [dt_min, dt_max] (Mamba's dt initialisation)."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus


class Mamba2(nn.Module):
    """Causal Mamba2 token mixer. forward(x (B,T,D), lengths) -> (B,T,D), zero on padding."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        expand: int = 1,
        headdim: int = 64,
        ngroups: int = 1,
        chunk_size: int = DEFAULT_CHUNK,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        A_init_range: Tuple[float, float] = (1.0, 16.0),
        bias: bool = False,
        conv_bias: bool = True,
        norm_eps: float = 1e-5,
        use_kernels: Optional[bool] = None,
    ):
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim:
            raise ValueError(f"expand*d_model ({d_inner}) must be a multiple of headdim ({headdim})")
        nheads = d_inner // headdim
        if nheads % ngroups:
            raise ValueError(f"nheads ({nheads}) must be a multiple of ngroups ({ngroups})")
        self.d_model, self.d_inner, self.d_state, self.d_conv = d_model, d_inner, d_state, d_conv
        self.headdim, self.nheads, self.ngroups, self.chunk_size = headdim, nheads, ngroups, chunk_size
        self.use_kernels = use_kernels
        self.conv_dim = d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, d_inner + self.conv_dim + nheads, bias=bias)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, padding=d_conv - 1, bias=conv_bias
        )
        self.dt_bias = nn.Parameter(init_dt_bias(nheads, dt_min, dt_max, dt_init_floor))
        A = torch.empty(nheads).uniform_(*A_init_range)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(nheads))
        self.norm = GatedRMSNorm(d_inner, d_inner // ngroups, norm_eps)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def config_key(self):
        return (self.d_model, self.d_inner, self.d_state, self.d_conv, self.headdim, self.ngroups,
                self.chunk_size, self.norm.eps)

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        return mamba2_directions([self], [False], x, lengths)

    # ---- recurrent inference -------------------------------------------------------------
    def init_state(self, batch_size: int, device=None, dtype=None):
        """(conv window of the last d_conv-1 conv inputs, SSM state (B, heads, headdim, d_state))."""
        p = self.A_log
        device, dtype = device or p.device, dtype or p.dtype
        return (
            torch.zeros(batch_size, self.conv_dim, self.d_conv - 1, device=device, dtype=dtype),
            torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=device, dtype=dtype),
        )

    def step(self, x_t: Tensor, state) -> Tuple[Tensor, tuple]:
        """One frame x_t (B, D) -> (y_t (B, D), new state); equals forward() frame by frame."""
        conv_state, ssm = state
        H, P, G, N = self.nheads, self.headdim, self.ngroups, self.d_state
        z, xBC, dt = self.in_proj(x_t).split([self.d_inner, self.conv_dim, H], dim=-1)
        window = torch.cat([conv_state, xBC.unsqueeze(-1)], dim=-1)
        xBC = (window * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            xBC = xBC + self.conv1d.bias
        xBC = F.silu(xBC)
        xs, Bm, Cm = xBC.split([self.d_inner, G * N, G * N], dim=-1)
        xs = xs.view(-1, H, P)
        group = torch.arange(H, device=x_t.device) // (H // G)
        Bm, Cm = Bm.view(-1, G, N)[:, group], Cm.view(-1, G, N)[:, group]  # (B,H,N)
        dt = F.softplus(dt + self.dt_bias)
        decay = torch.exp(dt * -torch.exp(self.A_log))
        ssm = ssm * decay[..., None, None] + (dt[..., None] * xs).unsqueeze(-1) * Bm.unsqueeze(2)
        y = (ssm @ Cm.unsqueeze(-1)).squeeze(-1) + self.D[:, None] * xs
        y = _gated_rms(y.reshape(-1, self.d_inner), z, self.norm.weight, self.norm.group_size, self.norm.eps)
        return self.out_proj(y), (window[..., 1:], ssm)


def cat_bias(layers: Sequence[nn.Module]) -> Optional[Tensor]:
    """Concatenated biases of Linear/Conv layers, zeros for those without; None if all lack one."""
    if all(l.bias is None for l in layers):
        return None
    return torch.cat([l.bias if l.bias is not None else l.weight.new_zeros(l.weight.shape[0]) for l in layers])


def mamba2_directions(mods: Sequence[Mamba2], reverse: Sequence[bool], x: Tensor,
                      lengths: Optional[Tensor]) -> Tensor:
    """Run K same-shaped Mamba2 mixers on x at once and sum their outputs; mixer k reads each
    sequence reversed within its valid length when reverse[k]. The K mixers run as one hand-written
    autograd node over blocks of time (mamba2_layer); with mamba-ssm's kernels, as one wide Mamba2
    through them (mamba2_directions_wide)."""
    if want_kernels(mods[0].use_kernels, x):
        return mamba2_directions_wide(mods, reverse, x, lengths, use_kernels=True)
    b, T, _ = x.shape
    lengths = none_if_full(check_lengths(lengths, b, T), T)
    params = [p for m in mods for p in mixer_params(m)]
    if lengths is None:  # no padding: no stacked or reversed whole-sequence copies (see run_directions)
        return run_directions(x, reverse, conf_of(mods[0]), params)
    mask = valid_mask(lengths, T, x.device)
    if mask is not None:
        # padding is read by nothing valid (it comes after each row's frames in both directions);
        # zeroing it keeps inf/nan there from reaching the chunked matmuls as 0 * inf
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
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


def mamba2_directions_wide(mods: Sequence[Mamba2], reverse: Sequence[bool], x: Tensor,
                           lengths: Optional[Tensor], use_kernels: bool) -> Tensor:
    """Same result as mamba2_directions, composed of autograd-tracked tensor ops: the K mixers
    become one wide Mamba2 with K*heads heads and K*groups groups (the SSD grouping keeps each
    mixer's heads on its own B, C), time-reversed inputs gathered. The path for mamba-ssm's
    kernels, and the reference the hand-written layer is tested against."""
    m0 = mods[0]
    K = len(mods)
    b, T, _ = x.shape
    lengths = check_lengths(lengths, b, T)
    mask = valid_mask(lengths, T, x.device)
    if mask is not None:
        # causal mixers never read padding into valid frames; zeroing keeps inf/nan in padding
        # from leaking through 0 * inf inside the chunked matmuls
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    H, G, N, P, di, cd = m0.nheads, m0.ngroups, m0.d_state, m0.headdim, m0.d_inner, m0.conv_dim

    w_in = torch.cat([m.in_proj.weight for m in mods]) if K > 1 else m0.in_proj.weight
    b_in = cat_bias([m.in_proj for m in mods]) if K > 1 else m0.in_proj.bias
    zxbcdt = F.linear(x, w_in, b_in).view(b, T, K, -1)
    index = None
    if any(reverse):
        rev = reverse_index(lengths, b, T, x.device)
        fwd = torch.arange(T, device=x.device).expand(b, T)
        index = torch.stack([rev if r else fwd for r in reverse], dim=2)  # (b,T,K)
        zxbcdt = zxbcdt.gather(1, index.unsqueeze(-1).expand_as(zxbcdt))
    z, xBC, dt_raw = zxbcdt.split([di, cd, H], dim=-1)

    conv_w = torch.cat([m.conv1d.weight for m in mods]) if K > 1 else m0.conv1d.weight
    conv_b = cat_bias([m.conv1d for m in mods]) if K > 1 else m0.conv1d.bias
    xBC = F.silu(causal_depthwise_conv(xBC.reshape(b, T, K * cd), conv_w, conv_b)).view(b, T, K, cd)
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
    y = _gated_rms(y.reshape(b, T, K, di), z, norm_w, m0.norm.group_size, m0.norm.eps)
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
