"""Windowed decoding of long inputs for models that cannot (or should not) read them in one pass.

A transformer teacher's attention costs O(T^2) and it never saw inputs much longer than its training
utterances (Whisper: 30 s), so a long input is cut into overlapping windows of `window` input units
(samples, or feature frames) that start every `window - overlap` units.

Merge rule. Every window is run alone, giving frame-level CTC log-probabilities. Output frames live on
one global time axis (window k's frame j is global frame start_k / stride + j, starts being multiples of
the model's input units per output frame). Each global frame is taken from exactly one window: the cut
between consecutive windows lies in the middle of their overlap, so window k supplies frames from
(its start + overlap/2) to (next window's start + overlap/2); the first window starts at 0 and the last
runs to its end. The kept frames are spliced in time order and decoded *once* with CTC over the whole
spliced sequence. Consequences:
- every kept frame has at least overlap/2 of context on both sides (except at the ends of the input,
  which have none in one-pass decoding either), so it sees what it would see in one pass whenever the
  model's receptive field is within overlap/2;
- a token spoken across a cut appears in one window's frames on one side of the cut only, and CTC's
  merging of repeated frames joins a spike split over the cut, so words are neither doubled nor need a
  text-level de-duplication across windows (the weak point of merging per-window transcripts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np


@dataclass(frozen=True)
class Window:
    start: int  # first input unit (sample / feature frame) of the window
    end: int  # one past its last input unit
    frame0: int  # global output frame of the window's frame 0
    keep_from: int  # global output frames [keep_from, keep_to) come from this window
    keep_to: int  # (None-like open end for the last window is resolved at splice time)


def plan_windows(n_in: int, window: int, overlap: int, stride: int) -> List[Window]:
    """Windows covering [0, n_in). window, overlap in input units, rounded down to whole output frames;
    stride: input units per output frame. A single window when the input fits in one."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    win_f, ovl_f = window // stride, overlap // stride
    if win_f < 1:
        raise ValueError(f"window ({window} input units) is shorter than one output frame ({stride})")
    if not 0 <= ovl_f < win_f:
        raise ValueError(f"overlap ({overlap}) must be >= 0 and shorter than the window ({window})")
    hop_f = win_f - ovl_f
    win_in = win_f * stride
    if n_in <= win_in:
        return [Window(0, n_in, 0, 0, -1)]
    starts = [0]
    while starts[-1] * stride + win_in < n_in:
        starts.append(starts[-1] + hop_f)
    out = []
    for k, s in enumerate(starts):
        keep_from = 0 if k == 0 else s + ovl_f // 2
        keep_to = -1 if k == len(starts) - 1 else starts[k + 1] + ovl_f // 2
        out.append(Window(s * stride, min(s * stride + win_in, n_in), s, keep_from, keep_to))
    return out


def splice(windows: Sequence[Window], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate each window's kept frames ((T_k, V) arrays, one per window) in time order."""
    if len(windows) != len(outputs):
        raise ValueError(f"{len(windows)} windows but {len(outputs)} outputs")
    parts = []
    for w, out in zip(windows, outputs):
        lo = w.keep_from - w.frame0
        hi = out.shape[0] if w.keep_to < 0 else min(w.keep_to - w.frame0, out.shape[0])
        if lo >= hi:
            raise ValueError(
                f"window [{w.start}, {w.end}) has {out.shape[0]} frames; none in its kept range "
                f"[{w.keep_from}, {w.keep_to}) - the overlap is too small for this model"
            )
        parts.append(out[lo:hi])
    return np.concatenate(parts, axis=0)
