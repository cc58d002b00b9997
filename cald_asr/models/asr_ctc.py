"""Encoder + CTC: the ASR model of every speech recipe, teacher and student alike."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from cald_asr.models.output import ModelOutput
from cald_asr.precision import upcast

BLANK = 0  # token lists put <blank> first


class ASRCTCModel(nn.Module):
    """speech (B, N) waveform or (B, T, D) features -> per-frame logits over the token list.

    `frontend` (optional) turns waveforms into the features the encoder reads (Whisper's log-mel);
    without one the encoder reads the input itself (Wav2Vec2 waveforms, dumped MFCCs)."""

    kind = "asr_ctc"  # the model config's `model:` (its task: cald_asr.tasks)

    def __init__(self, encoder: nn.Module, vocab_size: int, frontend: Optional[nn.Module] = None, dropout: float = 0.0):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.ctc = nn.Linear(encoder.d_model, vocab_size)
        self.vocab_size = vocab_size
        # SpecAugment (no parameters), set by the trainer; acts on the features in training mode only
        self.specaug: Optional[nn.Module] = None

    def output_lengths(self, speech_lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames for input lengths, without running the model (the trainer normalises by them)."""
        lengths = speech_lengths
        if self.frontend is not None:
            lengths = self.frontend.output_lengths(lengths)
        return self.encoder.output_lengths(lengths)

    def forward(self, speech: torch.Tensor, speech_lengths: Optional[torch.Tensor] = None) -> ModelOutput:
        if speech_lengths is None:
            speech_lengths = torch.full((speech.shape[0],), speech.shape[1], dtype=torch.long, device=speech.device)
        x, x_lengths = speech, speech_lengths
        if self.frontend is not None:
            x, x_lengths = self.frontend(x, x_lengths)
        if self.specaug is not None:
            x, x_lengths = self.specaug(x, x_lengths)
        enc = self.encoder(x, x_lengths)
        return ModelOutput(self.ctc(self.dropout(enc.out)), enc.out_lengths, enc.hidden_states)

    @staticmethod
    def ctc_loss(out: ModelOutput, text: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        """Per-utterance CTC loss (B,), summed over each utterance's tokens; the caller averages."""
        log_probs = F.log_softmax(upcast(out.logits), dim=-1).transpose(0, 1)  # (T', B, V)
        # padded target slots hold -1; ctc_loss ignores them past text_lengths but wants them in range
        return F.ctc_loss(
            log_probs,
            text.clamp(min=0),
            out.out_lengths,
            text_lengths,
            blank=BLANK,
            reduction="none",
            zero_infinity=True,
        )
