"""Whisper's log-mel front end, batched over utterances of any length.

For one utterance this is Whisper's ``log_mel_spectrogram`` without the padding to 30 s: 16 kHz audio,
centred STFT (reflect padding of n_fft/2 at both ends), n_fft 400, hop 160, periodic Hann window, power
spectrum, 80 Slaney mel filters (librosa's), log10 floored at 1e-10, values below (max - 8) raised to it,
then (x + 4) / 4.  Whisper drops the last STFT frame, so an utterance of N samples gives N // 160 frames.

In a batch every utterance is reflected at its own end and clamped by its own maximum over its own
valid frames, so its features are exactly those it would get alone; padded frames are 0.
"""

from __future__ import annotations

from typing import Optional, Tuple

import librosa
import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160


class WhisperLogMel(nn.Module):
    def __init__(self, n_mels: int = 80):
        super().__init__()
        self.n_mels = n_mels
        self.n_fft = N_FFT
        self.hop_length = HOP_LENGTH
        self.sample_rate = SAMPLE_RATE
        # Computed in float64 and rounded to float32 once: librosa's float32 default rounds twice (before and
        # after the Slaney norm), which moves features by up to 2.4e-7.
        mel = librosa.filters.mel(
            sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels, htk=False, norm="slaney", dtype=np.float64
        )
        # Not persistent: the filterbank is a fixed function of n_mels, not a learned weight.
        self.register_buffer("mel_filters", torch.tensor(mel, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)

    def output_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(wav_lengths, self.hop_length, rounding_mode="floor")

    def _reflect_pad(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each row reflected by n_fft/2 about its own first and last valid sample (numpy 'reflect')."""
        pad = self.n_fft // 2
        B, N = wav.shape
        j = torch.arange(N + 2 * pad, device=wav.device)[None, :] - pad  # source index before reflection
        last = (lengths - 1)[:, None]
        src = j.abs()
        src = torch.where(src > last, 2 * last - src, src)
        # Positions past a row's own padded end are never used by its valid frames; clamp keeps gather legal.
        src = src.clamp(0, N - 1)
        return torch.gather(wav, 1, src.expand(B, -1))

    def forward(
        self, wav: torch.Tensor, wav_lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """wav (B, N) float at 16 kHz, wav_lengths (B,) -> feats (B, T, n_mels), feat_lengths (B,)."""
        if wav.dim() != 2:
            raise ValueError(f"WhisperLogMel expects wav of shape (batch, samples), got {tuple(wav.shape)}")
        if not torch.is_floating_point(wav):
            raise TypeError(f"WhisperLogMel expects a float waveform in [-1, 1], got dtype {wav.dtype}")
        B, N = wav.shape
        if wav_lengths is None:
            wav_lengths = torch.full((B,), N, dtype=torch.long, device=wav.device)
        wav_lengths = wav_lengths.to(device=wav.device, dtype=torch.long)
        if wav_lengths.shape != (B,):
            raise ValueError(f"wav_lengths must have shape ({B},), got {tuple(wav_lengths.shape)}")
        too_long = (wav_lengths > N).nonzero().flatten().tolist()
        if too_long:
            raise ValueError(f"utterances {too_long} in the batch have wav_lengths > padded length {N}")
        # Whisper's centred STFT reflects n_fft/2 samples, which needs more than that many samples.
        too_short = (wav_lengths <= self.n_fft // 2).nonzero().flatten().tolist()
        if too_short:
            raise ValueError(
                f"utterances {too_short} in the batch are too short: need more than {self.n_fft // 2} "
                f"samples ({(self.n_fft // 2) / self.sample_rate * 1000:.1f} ms at 16 kHz), got "
                f"{[int(wav_lengths[i]) for i in too_short]}"
            )

        wav = wav.to(self.mel_filters.dtype)  # the model's dtype (float64 in equality checks)
        padded = self._reflect_pad(wav, wav_lengths)
        spec = torch.stft(
            padded,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=False,
            return_complex=True,
        )  # (B, F, N // hop + 1)
        power = spec[..., :-1].abs() ** 2  # Whisper drops the last frame
        mel = torch.matmul(self.mel_filters, power)  # (B, n_mels, T)
        log_spec = mel.clamp(min=1e-10).log10().transpose(1, 2)  # (B, T, n_mels)

        feat_lengths = self.output_lengths(wav_lengths)
        T = log_spec.shape[1]
        valid = torch.arange(T, device=wav.device)[None, :] < feat_lengths[:, None]  # (B, T)
        peak = log_spec.masked_fill(~valid[..., None], float("-inf")).amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        feats = (log_spec + 4.0) / 4.0
        feats = feats.masked_fill(~valid[..., None], 0.0)
        return feats, feat_lengths
