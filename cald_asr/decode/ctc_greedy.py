"""Greedy (best-path) CTC decoding: the most likely token per frame, repeats merged, blanks removed."""

from __future__ import annotations

from typing import List

import torch

BLANK = 0


def ctc_greedy(logits: torch.Tensor, lengths: torch.Tensor, blank: int = BLANK) -> List[List[int]]:
    best = logits.argmax(-1)  # (B, T)
    out = []
    for b in range(best.shape[0]):
        path = best[b, : int(lengths[b])]
        keep = torch.ones_like(path, dtype=torch.bool)
        keep[1:] = path[1:] != path[:-1]
        out.append([int(t) for t in path[keep] if int(t) != blank])
    return out
