"""BiMamba2: a Mamba2 mixer per direction (Bidirectional), the two run as one fused scan."""

from __future__ import annotations

from .bidirectional import Bidirectional
from .mamba2 import Mamba2


class BiMamba2(Bidirectional):
    """Two independent Mamba2 mixers (same conf), run as one fused scan. fused=False runs them as
    two plain passes."""

    direction = Mamba2  # **conf are its keyword arguments

    def __init__(self, d_model: int, fused: bool = True, **conf):
        super().__init__(Mamba2(d_model, **conf), Mamba2(d_model, **conf), fused)
