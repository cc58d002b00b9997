"""Reading and writing one block of frames of a (b, T, D) sequence in a mixer's reading order, for
the blocked Mamba2 layer (mamba2_blocked): a mixer that reads its sequence reversed in time takes
its block from the mirrored frames and writes its result back to them, and several mixers may add
into one shared output, each frame's bias set exactly once."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def linear_into(out: Tensor, x: Tensor, w: Tensor, bias: Optional[Tensor]) -> None:
    """out (..., n) = x (..., m) @ w^T (+ bias), written in place."""
    x2 = x.reshape(-1, x.shape[-1])
    if out.is_contiguous():
        o2 = out.view(-1, out.shape[-1])
        if bias is None:
            torch.mm(x2, w.t(), out=o2)
        else:
            torch.addmm(bias, x2, w.t(), out=o2)
    else:
        out.copy_(F.linear(x2, w, bias).view(out.shape))


def mm_into(out: Tensor, a: Tensor, b: Tensor) -> None:
    """out (..., n) = a (..., m) @ b (m, n), written in place."""
    a2 = a.reshape(-1, a.shape[-1])
    if out.is_contiguous():
        torch.mm(a2, b, out=out.view(-1, out.shape[-1]))
    else:
        out.copy_((a2 @ b).view(out.shape))


def read_rows(X: Tensor, k: int, s: int, n: int, reverse: Optional[Sequence[bool]]) -> Tensor:
    """Frames [s, s+n) of mixer k's input, (b,n,D), in its reading order. reverse None: X is (K,b,T,D),
    a view of X[k]. Else X is (1,b,T,D) (full-length rows, shared): a view, or where reverse[k]
    frames [T-s-n, T-s) reversed, a block-sized copy."""
    if reverse is None:
        return X[k, :, s : s + n]
    T = X.shape[2]
    return X[0, :, T - s - n : T - s].flip(1) if reverse[k] else X[0, :, s : s + n]


def write_rows(
    out: Tensor,
    s: int,
    n: int,
    reverse: bool,
    a: Tensor,
    w: Tensor,
    bias: Optional[Tensor] = None,
    written: Optional[list] = None,
) -> None:
    """out (b,T,n_out) frames [s, s+n) in reading order = a (b,n,m) @ w^T (+ bias); when reverse,
    written to frames [T-s-n, T-s) reversed.

    With `written` (full-length rows: every mixer writes into one shared output, which saves a
    whole-sequence tensor per mixer and the pass that sums them): the frame intervals other
    mixers have written so far. Those frames are added to, the rest are set; bias is then the sum
    of all mixers' biases, included where a frame is set (each frame is set exactly once)."""
    T = out.shape[1]
    r0, r1 = (T - s - n, T - s) if reverse else (s, s + n)
    pieces = [(r0, r1, False)] if written is None else _pieces(r0, r1, written)
    for p0, p1, add in pieces:
        i0, i1 = (T - s - p1, T - s - p0) if reverse else (p0 - s, p1 - s)  # rows of a
        dst = out[:, p0:p1]
        if reverse:
            lin = F.linear(a[:, i0:i1], w, None if add else bias)
            if add:
                dst.add_(lin.flip(1))
            else:
                torch.ops.aten.flip.out(lin, [1], out=dst)
        elif add:
            if dst.is_contiguous():
                dst.view(-1, dst.shape[-1]).addmm_(a[:, i0:i1].reshape(-1, a.shape[-1]), w.t())
            else:
                dst.add_(F.linear(a[:, i0:i1], w))
        else:
            linear_into(dst, a[:, i0:i1], w, bias)
    if written is not None:
        _mark(written, r0, r1)


def _pieces(r0: int, r1: int, written: list) -> list:
    """[r0, r1) cut at the edges of the intervals in `written` -> (p0, p1, already written)."""
    cuts = sorted({r0, r1} | {e for iv in written for e in iv if r0 < e < r1})
    return [(a, b, any(lo <= a and b <= hi for lo, hi in written)) for a, b in zip(cuts, cuts[1:])]


def _mark(written: list, r0: int, r1: int) -> None:
    """Add [r0, r1) to the sorted, disjoint intervals in `written`, merging neighbours."""
    ivs = sorted(written + [(r0, r1)])
    merged = [ivs[0]]
    for lo, hi in ivs[1:]:
        if lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    written[:] = merged
