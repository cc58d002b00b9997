"""Pad a list of dataset items into one batch, and move a batch to a device."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch

TEXT_PAD = -1  # never a valid token id, so losses can mask it


def pad_collate(items: Sequence[Dict]) -> Dict:
    """items: dicts {utt_id, speech (T,) or (T, D), text_ids (L,)} ->
    {utt_ids, speech (B, Tmax[, D]) zero-padded, speech_lengths, text (B, Lmax) padded with -1, text_lengths}."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    speech = [torch.as_tensor(it["speech"], dtype=torch.float32) for it in items]
    text = [torch.as_tensor(it["text_ids"], dtype=torch.long) for it in items]
    trailing = {s.shape[1:] for s in speech}
    if len(trailing) != 1:
        ids = [it["utt_id"] for it in items]
        raise ValueError(f"speech of utterances {ids} have different feature shapes {sorted(map(tuple, trailing))}")
    speech_lengths = torch.tensor([s.shape[0] for s in speech], dtype=torch.long)
    text_lengths = torch.tensor([t.shape[0] for t in text], dtype=torch.long)
    return {
        "utt_ids": [it["utt_id"] for it in items],
        "speech": torch.nn.utils.rnn.pad_sequence(speech, batch_first=True, padding_value=0.0),
        "speech_lengths": speech_lengths,
        "text": _pad_text(text, int(text_lengths.max())),
        "text_lengths": text_lengths,
    }


def _pad_text(text: List[torch.Tensor], max_len: int) -> torch.Tensor:
    # pad_sequence cannot build (B, 0) when every transcript is empty (token ids not needed, e.g. inference).
    out = torch.full((len(text), max_len), TEXT_PAD, dtype=torch.long)
    for i, t in enumerate(text):
        out[i, : t.shape[0]] = t
    return out


def to_device(batch: Dict[str, Any], device: torch.device, dtype: Optional[torch.dtype] = None) -> Dict[str, Any]:
    """Tensors to `device`; floating-point ones also to `dtype` when given (the run's dtype)."""

    def move(v):
        if dtype is not None and torch.is_floating_point(v):
            return v.to(device, dtype, non_blocking=True)
        return v.to(device, non_blocking=True)

    return {k: move(v) if torch.is_tensor(v) else v for k, v in batch.items()}
