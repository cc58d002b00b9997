"""SpecAugment (Park et al., 2019) on padded feature batches: frequency and time masks, applied only
within each utterance's valid frames, in training mode only. Features (B, T, D) only: a waveform input
(Wav2Vec2) is left alone."""

from __future__ import annotations

import torch
from torch import nn


class SpecAugment(nn.Module):
    def __init__(
        self, freq_mask_width: int = 27, num_freq_mask: int = 2, time_mask_ratio: float = 0.05, num_time_mask: int = 2
    ):
        super().__init__()
        self.freq_mask_width, self.num_freq_mask = freq_mask_width, num_freq_mask
        self.time_mask_ratio, self.num_time_mask = time_mask_ratio, num_time_mask

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        if not self.training or feats.dim() != 3:
            return feats, lengths
        B, T, D = feats.shape
        keep = torch.ones(B, T, D, dtype=torch.bool, device=feats.device)
        rand = torch.rand  # the global generator: checkpointed with the run, so a resume is exact
        for b in range(B):
            for _ in range(self.num_freq_mask):
                w = int(rand(1) * (min(self.freq_mask_width, D) + 1))
                f0 = int(rand(1) * (D - w + 1))
                keep[b, :, f0 : f0 + w] = False
            n = int(lengths[b])
            max_w = int(self.time_mask_ratio * n)
            for _ in range(self.num_time_mask):
                w = int(rand(1) * (max_w + 1))
                t0 = int(rand(1) * max(n - w + 1, 1))
                keep[b, t0 : t0 + w, :] = False
        return feats.masked_fill(~keep, 0.0), lengths
