"""Read and write Kaldi feature matrices (feats.scp values 'path.ark:offset') through kaldiio."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Tuple

import kaldiio
import numpy as np


class FeatureError(RuntimeError):
    """A feature entry that cannot be used; the message names the utterance and the specifier."""


def ark_path_of(spec: str) -> str:
    """'foo.ark:123' -> 'foo.ark' (kaldiio also accepts a trailing slice '[..]', which we drop too)."""
    spec = spec.strip()
    if "[" in spec:
        spec = spec[: spec.index("[")]
    path, sep, offset = spec.rpartition(":")
    return path if sep and offset.isdigit() else spec


def load_feats(utt_id: str, spec: str) -> np.ndarray:
    """Load one (frames, dim) float32 matrix; every failure names the utterance."""
    path = ark_path_of(spec)
    if not Path(path).exists():
        raise FeatureError(f"utterance '{utt_id}': feature file '{path}' does not exist ({spec})")
    try:
        mat = kaldiio.load_mat(spec)
    except Exception as e:  # kaldiio raises ValueError/OSError/IndexError depending on the corruption
        reason = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        raise FeatureError(f"utterance '{utt_id}': cannot read features from '{spec}' ({reason})") from None
    mat = np.asarray(mat)
    if mat.ndim != 2:
        raise FeatureError(f"utterance '{utt_id}': features '{spec}' have shape {mat.shape}, expected (frames, dim)")
    if mat.shape[0] == 0:
        raise FeatureError(f"utterance '{utt_id}': features '{spec}' have 0 frames")
    return mat.astype(np.float32, copy=False)


def write_feats(
    ark_path: os.PathLike | str, scp_path: os.PathLike | str, items: Iterable[Tuple[str, np.ndarray]]
) -> None:
    """Write (utt, matrix) pairs in the given order; scp values use the absolute ark path."""
    ark_path = Path(ark_path).absolute()
    scp_path = Path(scp_path).absolute()
    ark_path.parent.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{ark_path},{scp_path}") as writer:
        for utt, mat in items:
            writer(utt, np.asarray(mat, dtype=np.float32))
