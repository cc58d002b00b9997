"""Linear-time token mixers that replace self-attention: every mixer maps (x (B,T,D), lengths)
to (B,T,D) with zeros on padded frames. Build them by name with build_mixer."""
from .bidirectional import BiMamba, BiMamba2, Bidirectional
from .linformer import Linformer, LinformerProjection
from .mamba import Mamba
from .mamba2 import Mamba2
from .registry import MIXERS, build_mixer

__all__ = ["MIXERS", "build_mixer", "Mamba2", "Mamba", "Bidirectional", "BiMamba2", "BiMamba",
           "Linformer", "LinformerProjection"]
