"""Pretrained encoders (teachers) whose token mixers conversion replaces; one file per family."""

from cald_asr.models.encoders.bert import BertEncoder, default_minilm_path
from cald_asr.models.encoders.output import EncoderOutput
from cald_asr.models.encoders.wav2vec2 import Wav2Vec2Encoder, load_wav2vec2_ctc_head
from cald_asr.models.encoders.whisper import WhisperEncoder, default_whisper_tiny_en_path

__all__ = [
    "BertEncoder",
    "EncoderOutput",
    "Wav2Vec2Encoder",
    "WhisperEncoder",
    "default_minilm_path",
    "default_whisper_tiny_en_path",
    "load_wav2vec2_ctc_head",
]
