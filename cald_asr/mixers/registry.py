"""The one table of token mixers, by the names configs use."""

from __future__ import annotations

import torch.nn as nn

from cald_asr.registry import Registry

from .bimamba import BiMamba
from .bimamba2 import BiMamba2
from .linformer import Linformer
from .mamba import Mamba
from .mamba2 import Mamba2

MIXERS: Registry[type] = Registry(
    "mixer",
    {
        "mamba2": Mamba2,
        "mamba": Mamba,
        "bimamba2": BiMamba2,
        "bimamba": BiMamba,
        "linformer": Linformer,
    },
)


def build_mixer(name: str, d_model: int, **conf) -> nn.Module:
    """MIXERS[name](d_model, **conf); e.g. build_mixer("linformer", 768, num_heads=12, max_len=512)."""
    return MIXERS.lookup(name)(d_model, **conf)
