"""Linear-time token mixers that replace self-attention: every mixer maps (x (B,T,D), lengths)
to (B,T,D) with zeros on padded frames. Build them by name with build_mixer. No mixer knows a
model: nothing here imports from cald_asr.models, train, distill or data.

One file per mixer, each registered by its name in registry.py (MIXERS):
    mamba2.py         Mamba2    (Dao & Gu 2024): SSD scan, one scalar decay per head
    mamba.py          Mamba     (Gu & Dao 2023): selective scan, a decay per channel and state
    bimamba2.py       BiMamba2  a Mamba2 per direction, run as one fused scan
    bimamba.py        BiMamba   a Mamba per direction, run as one fused scan
    linformer.py      Linformer (Wang et al. 2020): attention over keys and values projected to k
                      along time (LinformerProjection)
    bidirectional.py  Bidirectional, the wrapper BiMamba2 and BiMamba are: any two mixers, one
                      reading each sequence reversed

ops/ holds what the blocks are computed with (nothing in it is a mixer):
    directions.py      K same-shaped Mamba or Mamba2 mixers in one pass (every forward goes through it)
    ssd.py             the chunked SSD scan (Mamba2), an autograd node over ssd_chunks.py
    ssd_chunks.py      its chunk math, forward and backward written out by hand
    selective_scan.py  the selective scan (Mamba), a blocked prefix scan with its own backward
    mamba2_blocked.py  a whole Mamba2 layer (K mixers) in blocks of time, backward written by hand
    block_rows.py      reading and writing a block of frames in a mixer's reading order (for it)
    conv.py            causal depthwise conv: autograd, tiled with a hand-written backward, one frame
    masking.py         length checks, validity masks, reversal within each valid length
    norm.py            Mamba2's gated RMS norm
    dt_init.py         the initial dt bias both Mamba blocks use
    cuda_kernels.py    mamba-ssm's CUDA kernels, imported on first use only
"""

from .bidirectional import Bidirectional
from .bimamba import BiMamba
from .bimamba2 import BiMamba2
from .linformer import Linformer, LinformerProjection
from .mamba import Mamba
from .mamba2 import Mamba2
from .registry import MIXERS, build_mixer

__all__ = [
    "MIXERS",
    "build_mixer",
    "Mamba2",
    "Mamba",
    "Bidirectional",
    "BiMamba2",
    "BiMamba",
    "Linformer",
    "LinformerProjection",
]
