"""Mamba (v1) block (Gu & Dao 2023, section 3.4): input projection to (x, z), depthwise causal conv
and SiLU on x, input-dependent (delta, B, C) from x through a low-rank delta, selective scan with a
diagonal A per channel and state, D skip, gate by silu(z), output projection. Parameter names and
shapes follow mamba-ssm's Mamba so weights interchange. forward runs through ops.directions (the
selective scan, or mamba-ssm's kernel); step is the same block one frame at a time."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .ops.conv import causal_conv_step
from .ops.directions import mamba_directions
from .ops.dt_init import init_dt_bias
from .ops.selective_scan import DEFAULT_BLOCK


class Mamba(nn.Module):
    """Causal Mamba token mixer. forward(x (B,T,D), lengths) -> (B,T,D), zero on padding.

    Arguments (a config's mixer_conf gives all but d_model):
      d_model        input and output width D
      d_state        state size N of each channel (the length of B_t and C_t)
      d_conv         kernel length of the causal depthwise conv
      expand         d_inner = expand * d_model, the width of x and z and the channels of the scan
      dt_rank        rank of the low-rank delta projection (x_proj then dt_proj); default
                     ceil(d_model / 16)
      dt_min, dt_max the range delta = softplus(dt_proj.bias) starts log-uniform in
      dt_init_floor  the smallest initial delta
      dt_scale       dt_proj's weights start uniform in +-dt_scale / sqrt(dt_rank)
      bias           biases on in_proj and out_proj
      conv_bias      a bias on the conv
      block_size     frames per block of the selective scan: changes speed, and the result only by
                     rounding
      use_kernels    mamba-ssm's CUDA kernel: True (required), False (never), None (when the input
                     is a CUDA tensor and mamba_ssm is installed)
    """

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
        bound = self.dt_rank**-0.5 * dt_scale  # keeps delta's spread independent of dt_rank
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        with torch.no_grad():
            self.dt_proj.bias.copy_(init_dt_bias(d_inner, dt_min, dt_max, dt_init_floor))
        # S4D-real initialisation: A[:, n] = -(n + 1)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def config_key(self):
        """What two Mamba mixers must share to run as one fused pass."""
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
        xs, conv_state = causal_conv_step(conv_state, xs, self.conv1d.weight, self.conv1d.bias)
        xs = F.silu(xs)
        dt, Bm, Cm = self.x_proj(xs).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        h = torch.exp(delta.unsqueeze(-1) * A) * h + (delta * xs).unsqueeze(-1) * Bm.unsqueeze(1)
        y = (h @ Cm.unsqueeze(-1)).squeeze(-1) + self.D * xs
        return self.out_proj(y * F.silu(z)), (conv_state, h)
