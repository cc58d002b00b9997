"""Acoustic front ends (waveform -> features), batched with per-utterance lengths, and SpecAugment on features."""

from cald_asr.frontend.whisper_logmel import WhisperLogMel

__all__ = ["WhisperLogMel"]
