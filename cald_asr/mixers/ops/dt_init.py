"""Initial dt bias of the Mamba blocks (Mamba and Mamba2 share it)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def init_dt_bias(n: int, dt_min: float, dt_max: float, floor: float) -> Tensor:
    """Bias whose softplus is log-uniform in [dt_min, dt_max] (Mamba's dt initialisation)."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus
