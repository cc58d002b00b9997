"""BiMamba: a Mamba (v1) mixer per direction (Bidirectional), the two run as one fused scan."""

from __future__ import annotations

from .bidirectional import Bidirectional
from .mamba import Mamba


class BiMamba(Bidirectional):
    """Two independent Mamba (v1) mixers (same conf), run as one fused scan. fused=False runs them as
    two plain passes."""

    direction = Mamba  # **conf are its keyword arguments

    def __init__(self, d_model: int, fused: bool = True, **conf):
        super().__init__(Mamba(d_model, **conf), Mamba(d_model, **conf), fused)
