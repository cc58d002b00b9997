"""Mamba2 block (Dao & Gu 2024, section 7): one input projection to (z, x, B, C, dt), depthwise
causal conv over (x, B, C), SiLU, SSD scan with one scalar A per head, D skip, RMSNorm gated by z,
output projection. Parameter names and shapes follow mamba-ssm's Mamba2 so weights interchange.
forward runs through ops.directions (the blocked layer with its hand-written backward, or mamba-ssm's
kernels); step is the same block one frame at a time."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .ops.conv import causal_conv_step
from .ops.directions import mamba2_directions
from .ops.dt_init import init_dt_bias
from .ops.norm import GatedRMSNorm, gated_rms
from .ops.ssd import DEFAULT_CHUNK


class Mamba2(nn.Module):
    """Causal Mamba2 token mixer. forward(x (B,T,D), lengths) -> (B,T,D), zero on padding.

    Arguments (a config's mixer_conf gives all but d_model):
      d_model        input and output width D
      d_state        state size N of each head (the length of B_t and C_t)
      d_conv         kernel length of the causal depthwise conv
      expand         d_inner = expand * d_model, the width of x and z
      headdim        channels per head; nheads = d_inner // headdim, each with one scalar decay A
      ngroups        groups of heads that share one B and C (nheads must be a multiple)
      chunk_size     SSD chunk length: changes speed, and the result only by rounding
      dt_min, dt_max the range dt = softplus(dt_bias) starts log-uniform in
      dt_init_floor  the smallest initial dt
      A_init_range   the range -A starts uniform in (A = -exp(A_log))
      bias           biases on in_proj and out_proj
      conv_bias      a bias on the conv
      norm_eps       epsilon of the gated RMS norm
      use_kernels    mamba-ssm's CUDA kernels: True (required), False (never), None (when the input
                     is a CUDA tensor and mamba_ssm is installed)
    """

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
        """What two Mamba2 mixers must share to run as one fused pass."""
        return (
            self.d_model,
            self.d_inner,
            self.d_state,
            self.d_conv,
            self.headdim,
            self.ngroups,
            self.chunk_size,
            self.norm.eps,
        )

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
        xBC, conv_state = causal_conv_step(conv_state, xBC, self.conv1d.weight, self.conv1d.bias)
        xBC = F.silu(xBC)
        xs, Bm, Cm = xBC.split([self.d_inner, G * N, G * N], dim=-1)
        xs = xs.view(-1, H, P)
        group = torch.arange(H, device=x_t.device) // (H // G)
        Bm, Cm = Bm.view(-1, G, N)[:, group], Cm.view(-1, G, N)[:, group]  # (B,H,N)
        dt = F.softplus(dt + self.dt_bias)
        decay = torch.exp(dt * -torch.exp(self.A_log))
        ssm = ssm * decay[..., None, None] + (dt[..., None] * xs).unsqueeze(-1) * Bm.unsqueeze(2)
        y = (ssm @ Cm.unsqueeze(-1)).squeeze(-1) + self.D[:, None] * xs
        y = gated_rms(y.reshape(-1, self.d_inner), z, self.norm.weight, self.norm.group_size, self.norm.eps)
        return self.out_proj(y), (conv_state, ssm)
