"""Model building blocks: attention, pretrained encoders and their checkpoint readers."""

from cald_asr.models.attention import MultiHeadSelfAttention
from cald_asr.models.ct2_reader import CT2FormatError, read_ct2_model

__all__ = ["CT2FormatError", "MultiHeadSelfAttention", "read_ct2_model"]
