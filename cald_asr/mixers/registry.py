"""The one table of token mixers, by the names configs use."""
from __future__ import annotations

import torch.nn as nn

from .bidirectional import BiMamba, BiMamba2
from .linformer import Linformer
from .mamba import Mamba
from .mamba2 import Mamba2

MIXERS: dict[str, type] = {
    "mamba2": Mamba2,
    "mamba": Mamba,
    "bimamba2": BiMamba2,
    "bimamba": BiMamba,
    "linformer": Linformer,
}


def build_mixer(name: str, d_model: int, **conf) -> nn.Module:
    """MIXERS[name](d_model, **conf); e.g. build_mixer("linformer", 768, num_heads=12, max_len=512)."""
    try:
        cls = MIXERS[name]
    except KeyError:
        raise ValueError(f"unknown mixer {name!r}; known mixers: {', '.join(sorted(MIXERS))}") from None
    return cls(d_model, **conf)
