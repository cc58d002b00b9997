"""Mamba (v1) block (Gu & Dao 2023, section 3.4): input projection to (x, z), depthwise causal conv
and SiLU on x, input-dependent (delta, B, C) from x through a low-rank delta, selective scan with a
diagonal A per channel and state, D skip, gate by silu(z), output projection. Parameter names and
shapes follow mamba-ssm's Mamba so weights interchange."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .conv import causal_depthwise_conv
from .kernels import selective_scan_kernel, want_kernels
from .mamba2 import cat_bias, init_dt_bias
from .masking import check_lengths, none_if_full, reverse_index, valid_mask
from .selective_scan import DEFAULT_BLOCK, selective_scan


class Mamba(nn.Module):
    """Causal Mamba token mixer. forward(x (B,T,D), lengths) -> (B,T,D), zero on padding."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: Optional[int] = None,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        bias: bool = False,
        conv_bias: bool = True,
        block_size: int = DEFAULT_BLOCK,
        use_kernels: Optional[bool] = None,
    ):
        super().__init__()
        d_inner = expand * d_model
        self.d_model, self.d_inner, self.d_state, self.d_conv = d_model, d_inner, d_state, d_conv
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.block_size, self.use_kernels = block_size, use_kernels
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        bound = self.dt_rank ** -0.5 * dt_scale  # keeps delta's spread independent of dt_rank
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        with torch.no_grad():
            self.dt_proj.bias.copy_(init_dt_bias(d_inner, dt_min, dt_max, dt_init_floor))
        # S4D-real initialisation: A[:, n] = -(n + 1)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def config_key(self):
        return (self.d_model, self.d_inner, self.d_state, self.d_conv, self.dt_rank, self.block_size)

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        return mamba_directions([self], [False], x, lengths)

    # ---- recurrent inference -------------------------------------------------------------
    def init_state(self, batch_size: int, device=None, dtype=None):
        """(conv window of the last d_conv-1 inputs, SSM state (B, d_inner, d_state))."""
        p = self.A_log
        device, dtype = device or p.device, dtype or p.dtype
        return (
            torch.zeros(batch_size, self.d_inner, self.d_conv - 1, device=device, dtype=dtype),
            torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=dtype),
        )

    def step(self, x_t: Tensor, state) -> Tuple[Tensor, tuple]:
        """One frame x_t (B, D) -> (y_t (B, D), new state); equals forward() frame by frame."""
        conv_state, h = state
        xs, z = self.in_proj(x_t).chunk(2, dim=-1)
        window = torch.cat([conv_state, xs.unsqueeze(-1)], dim=-1)
        xs = (window * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            xs = xs + self.conv1d.bias
        xs = F.silu(xs)
        dt, Bm, Cm = self.x_proj(xs).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        h = torch.exp(delta.unsqueeze(-1) * A) * h + (delta * xs).unsqueeze(-1) * Bm.unsqueeze(1)
        y = (h @ Cm.unsqueeze(-1)).squeeze(-1) + self.D * xs
        return self.out_proj(y * F.silu(z)), (window[..., 1:], h)


def _per_mixer_linear(x: Tensor, weights: Sequence[Tensor]) -> Tensor:
    """x (b,T,K,i) with mixer k's features in slot k -> (b,T,K,o), each slot through its own
    weight (o,i): one batched matmul over K."""
    if len(weights) == 1:
        return F.linear(x, weights[0])
    b, T, K, _ = x.shape
    w = torch.stack(list(weights))  # (K,o,i)
    y = x.reshape(b * T, K, -1).transpose(0, 1) @ w.transpose(1, 2)  # (K, bT, o)
    return y.transpose(0, 1).reshape(b, T, K, -1)


def mamba_directions(mods: Sequence[Mamba], reverse: Sequence[bool], x: Tensor,
                     lengths: Optional[Tensor]) -> Tensor:
    """Run K same-shaped Mamba mixers on x at once and sum their outputs; mixer k reads each
    sequence reversed within its valid length when reverse[k]. The K mixers become one Mamba with
    K*d_inner channels in K groups, so the scan runs once for all directions."""
    m0 = mods[0]
    K = len(mods)
    b, T, _ = x.shape
    lengths = none_if_full(check_lengths(lengths, b, T), T)
    mask = valid_mask(lengths, T, x.device)
    if mask is not None:
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)  # keeps inf/nan in padding out of the products
    di, N, R = m0.d_inner, m0.d_state, m0.dt_rank

    w_in = torch.cat([m.in_proj.weight for m in mods]) if K > 1 else m0.in_proj.weight
    b_in = cat_bias([m.in_proj for m in mods]) if K > 1 else m0.in_proj.bias
    xz = F.linear(x, w_in, b_in).view(b, T, K, 2 * di)
    index = None
    if any(reverse):
        rev = reverse_index(lengths, b, T, x.device)
        fwd = torch.arange(T, device=x.device).expand(b, T)
        index = torch.stack([rev if r else fwd for r in reverse], dim=2)
        xz = xz.gather(1, index.unsqueeze(-1).expand_as(xz))
    xs, z = xz.split([di, di], dim=-1)

    conv_w = torch.cat([m.conv1d.weight for m in mods]) if K > 1 else m0.conv1d.weight
    conv_b = cat_bias([m.conv1d for m in mods]) if K > 1 else m0.conv1d.bias
    xs = F.silu(causal_depthwise_conv(xs.reshape(b, T, K * di), conv_w, conv_b)).view(b, T, K, di)
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
    if index is not None:
        y = y.gather(1, index.unsqueeze(-1).expand_as(y))
    w_out = torch.cat([m.out_proj.weight for m in mods], dim=1) if K > 1 else m0.out_proj.weight
    b_out = None
    if any(m.out_proj.bias is not None for m in mods):
        b_out = sum(m.out_proj.bias for m in mods if m.out_proj.bias is not None)
    out = F.linear(y.reshape(b, T, K * di), w_out, b_out)
    if mask is not None:
        out = out.masked_fill(~mask.unsqueeze(-1), 0.0)
    return out
