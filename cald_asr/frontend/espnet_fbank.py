"""ESPnet's ASR feature pipeline in plain torch: the ``default`` front end (STFT -> power -> log-mel
filterbank, espnet2 DefaultFrontend without its optional WPE/beamformer stages) and the two feature
normalisations ``global_mvn`` and ``utterance_mvn``.

espnet2's DefaultFrontend cannot be imported here (its multichannel stages pull in torchaudio), so this
re-implements it from espnet2.layers.stft.Stft and espnet2.layers.log_mel.LogMel semantics: torch.stft
with the named window (torch's periodic windows, a short window centred in n_fft), reflect padding of
n_fft/2 at both ends when ``center``, power spectrum, librosa's mel matrix (Slaney norm, Slaney or HTK
scale), natural log floored at 1e-10.  Module and buffer names mirror ESPnet's (``logmel.melmat``,
``mean``/``std``) so an ESPnet model.pth loads into them key for key.

Deliberate difference, batched only: ESPnet pads the *batch* and reflects every row at the batch end, so
an utterance shorter than the longest one gets zeros instead of its own reflected samples in its last
frame or two, and utterance_mvn with norm_vars counts padded frames in the variance.  Here every
utterance is reflected at its own end and normalised over its own frames, so each one's features are
exactly what ESPnet computes for it alone, whatever it is batched with; padded frames are 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

import librosa
import numpy as np
import torch
from torch import nn


def parse_fs(fs: Union[int, str]) -> int:
    """ESPnet configs write sampling rates as 16000 or "16k" (decimal k, as humanfriendly reads it)."""
    if isinstance(fs, int):
        return fs
    s = str(fs).strip().lower()
    try:
        return int(float(s[:-1]) * 1000) if s.endswith("k") else int(s)
    except ValueError:
        raise ValueError(f"cannot read sampling rate {fs!r}: expected an integer or e.g. '16k'") from None


def _pad_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) True on padded frames."""
    return torch.arange(T, device=lengths.device)[None, :] >= lengths[:, None]


def _reflect_pad_each(wav: torch.Tensor, lengths: torch.Tensor, pad: int) -> torch.Tensor:
    """(B, N) -> (B, N + 2 pad): each row reflected (numpy/torch 'reflect', edge not repeated) about its
    own first and last valid sample; what lies past a row's own reflected end is never read by its valid
    frames, the clamp only keeps the gather in range."""
    B, N = wav.shape
    j = torch.arange(N + 2 * pad, device=wav.device)[None, :] - pad
    last = (lengths - 1)[:, None]
    src = j.abs()
    src = torch.where(src > last, 2 * last - src, src).clamp(0, N - 1)
    return torch.gather(wav, 1, src.expand(B, -1))


class LogMel(nn.Module):
    """Power spectrum (B, T, n_fft/2+1) -> natural-log mel energies (B, T, n_mels), floored at 1e-10."""

    def __init__(
        self,
        fs: int = 16000,
        n_fft: int = 512,
        n_mels: int = 80,
        fmin: Optional[float] = None,
        fmax: Optional[float] = None,
        htk: bool = False,
    ):
        super().__init__()
        fmin = 0.0 if fmin is None else fmin
        fmax = fs / 2 if fmax is None else fmax
        mel = librosa.filters.mel(sr=fs, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
        # Persistent, like ESPnet's: model.pth carries frontend.logmel.melmat and it is loaded from there.
        self.register_buffer("melmat", torch.from_numpy(mel.T).float())

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return torch.matmul(power, self.melmat).clamp(min=1e-10).log()


class EspnetFbank(nn.Module):
    """ESPnet ``frontend: default``. forward(wav (B, N) float, wav_lengths (B,) or None) ->
    (feats (B, T, n_mels), feat_lengths (B,)), with T = N // hop + 1 when centred."""

    def __init__(
        self,
        fs: Union[int, str] = 16000,
        n_fft: int = 512,
        win_length: Optional[int] = None,
        hop_length: int = 128,
        window: Optional[str] = "hann",
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
        n_mels: int = 80,
        fmin: Optional[float] = None,
        fmax: Optional[float] = None,
        htk: bool = False,
        frontend_conf: Optional[dict] = None,
        apply_stft: bool = True,
    ):
        super().__init__()
        if not apply_stft:
            raise ValueError("EspnetFbank: apply_stft=False (precomputed STFT input) is not supported")
        if not onesided:
            raise ValueError("EspnetFbank: onesided=False is not supported (log-mel needs a one-sided spectrum)")
        if frontend_conf and (frontend_conf.get("use_wpe") or frontend_conf.get("use_beamformer")):
            raise ValueError("EspnetFbank: the multichannel WPE/beamformer front end is not supported")
        if window is not None and not hasattr(torch, f"{window}_window"):
            raise ValueError(f"EspnetFbank: unknown window {window!r} (torch has no {window}_window)")
        self.fs = parse_fs(fs)
        self.n_fft, self.hop_length, self.center, self.normalized = n_fft, hop_length, center, normalized
        self.win_length = n_fft if win_length is None else win_length
        self.window_name = window
        self.n_mels = n_mels
        self.logmel = LogMel(self.fs, n_fft, n_mels, fmin, fmax, htk)

    def output_size(self) -> int:
        return self.n_mels

    def output_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        padded = wav_lengths + 2 * (self.n_fft // 2) if self.center else wav_lengths
        return torch.div(padded - self.n_fft, self.hop_length, rounding_mode="floor") + 1

    def forward(
        self, wav: torch.Tensor, wav_lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if wav.dim() != 2:
            raise ValueError(f"EspnetFbank expects wav of shape (batch, samples), got {tuple(wav.shape)}")
        if not torch.is_floating_point(wav):
            raise TypeError(f"EspnetFbank expects a float waveform, got dtype {wav.dtype}")
        B, N = wav.shape
        if wav_lengths is None:
            wav_lengths = torch.full((B,), N, dtype=torch.long, device=wav.device)
        wav_lengths = wav_lengths.to(device=wav.device, dtype=torch.long)
        pad = self.n_fft // 2 if self.center else 0
        need = pad + 1 if self.center else self.n_fft
        for i, n in enumerate(wav_lengths.tolist()):
            if n < need or n > N:
                raise ValueError(
                    f"EspnetFbank: utterance {i} of the batch has {n} samples; "
                    f"need {need}..{N} (n_fft {self.n_fft}, center={self.center})"
                )
        x = wav.to(self.logmel.melmat.dtype)  # the model's dtype (float64 in equality checks)
        if self.center:
            x = _reflect_pad_each(x, wav_lengths, pad)
        window = None
        if self.window_name is not None:
            window = getattr(torch, f"{self.window_name}_window")(self.win_length, dtype=x.dtype, device=x.device)
        spec = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=window,
            center=False,
            normalized=self.normalized,
            onesided=True,
            return_complex=True,
        )
        spec = torch.view_as_real(spec).transpose(1, 2)  # (B, T, F, 2)
        power = spec[..., 0] ** 2 + spec[..., 1] ** 2
        feats = self.logmel(power)
        lengths = self.output_lengths(wav_lengths)
        return feats.masked_fill(_pad_mask(lengths, feats.size(1))[..., None], 0.0), lengths


def read_feats_stats(path: Union[str, Path]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ESPnet's collect_stats output -> (count, sum, sum_square).  New style: an npz with ``count``,
    ``sum``, ``sum_square``; old Kaldi style: an npy of shape (2, D+1), sums then the count last."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"global_mvn stats file not found: {path}")
    try:
        stats = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npz/.npy stats file ({e})") from e
    if isinstance(stats, np.ndarray):
        if stats.ndim != 2 or stats.shape[0] != 2 or stats.shape[1] < 2:
            raise ValueError(f"{path}: Kaldi-style stats must have shape (2, dim+1), got {stats.shape}")
        return np.asarray(stats[0, -1]), stats[0, :-1], stats[1, :-1]
    missing = {"count", "sum", "sum_square"} - set(stats.files)
    if missing:
        raise ValueError(f"{path}: stats file lacks {sorted(missing)} (has {sorted(stats.files)})")
    return stats["count"], stats["sum"], stats["sum_square"]


class GlobalMVN(nn.Module):
    """``normalize: global_mvn``: (x - mean) / std with corpus statistics; padded frames 0.  The
    buffers are float64 as in ESPnet (which takes them from numpy) and cast to the input's dtype."""

    def __init__(self, dim: int, norm_means: bool = True, norm_vars: bool = True):
        super().__init__()
        self.norm_means, self.norm_vars = norm_means, norm_vars
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("std", torch.ones(dim, dtype=torch.float64))

    @classmethod
    def from_stats_file(
        cls, stats_file: Union[str, Path], norm_means: bool = True, norm_vars: bool = True, eps: float = 1.0e-20
    ) -> "GlobalMVN":
        count, s, sq = read_feats_stats(stats_file)
        mean = s / count
        std = np.sqrt(np.maximum(sq / count - mean * mean, eps))
        m = cls(int(np.size(mean)), norm_means, norm_vars)
        m.mean.copy_(torch.from_numpy(np.asarray(mean, dtype=np.float64)))
        m.std.copy_(torch.from_numpy(np.asarray(std, dtype=np.float64)))
        return m

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if lengths is None:
            lengths = torch.full((x.size(0),), x.size(1), dtype=torch.long, device=x.device)
        if self.norm_means:
            x = x - self.mean.to(x.device, x.dtype)
        x = x.masked_fill(_pad_mask(lengths.to(x.device), x.size(1))[..., None], 0.0)
        if self.norm_vars:
            x = x / self.std.to(x.device, x.dtype)
        return x, lengths


class UtteranceMVN(nn.Module):
    """``normalize: utterance_mvn`` (ESPnet's default): per-utterance mean (and optionally variance)
    normalisation over the utterance's own valid frames; padded frames 0."""

    def __init__(self, norm_means: bool = True, norm_vars: bool = False, eps: float = 1.0e-20):
        super().__init__()
        self.norm_means, self.norm_vars, self.eps = norm_means, norm_vars, eps

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if lengths is None:
            lengths = torch.full((x.size(0),), x.size(1), dtype=torch.long, device=x.device)
        pad = _pad_mask(lengths.to(x.device), x.size(1))[..., None]
        n = lengths.to(x.device, x.dtype).clamp(min=1)[:, None, None]
        x = x.masked_fill(pad, 0.0)
        mean = x.sum(dim=1, keepdim=True) / n
        centred = (x - mean).masked_fill(pad, 0.0)
        if self.norm_vars:
            std = (centred.pow(2).sum(dim=1, keepdim=True) / n).sqrt().clamp(min=self.eps)
            x = (centred if self.norm_means else x) / std
        elif self.norm_means:
            x = centred
        return x.masked_fill(pad, 0.0), lengths
