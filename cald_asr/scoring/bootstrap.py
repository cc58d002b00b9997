"""Bootstrap confidence intervals of a corpus error rate (WER, CER): how far the rate of a test set of this
size could move by the luck of which utterances it holds (Bisani and Ney 2004).

Each draw resamples the utterances with replacement, as many as the set holds, and its rate is the draw's
errors summed over the draw's reference units summed (the corpus rate, as sclite computes it, not a mean of
per-utterance rates); the interval is the [2.5, 97.5] percentiles of the draws' rates (numpy's linear
interpolation) for 95 %. The generator is seeded: the same counts give the same interval on every run.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from cald_asr.scoring.wer import ScoreReport

DRAWS = 1000
SEED = 0
_CHUNK = 100  # draws resampled at a time: memory of _CHUNK x utterances indices; fixed, so the stream is too


def bootstrap_rates(errors: Sequence[int], units: Sequence[int], draws: int = DRAWS, seed: int = SEED) -> np.ndarray:
    """The error rate (%) of each of `draws` resamplings of the utterances, utterance i having errors[i] errors
    in units[i] reference units. A draw without reference units rates 0 without errors, else inf (sclite's)."""
    e = np.asarray(errors, dtype=np.int64)
    w = np.asarray(units, dtype=np.int64)
    if e.shape != w.shape or e.ndim != 1:
        raise ValueError(f"errors and units must be two lists of one length, not {e.shape} and {w.shape}")
    if e.size == 0:
        raise ValueError("no utterance to resample")
    if draws < 1:
        raise ValueError(f"draws must be positive, not {draws}")
    rng = np.random.default_rng(seed)
    rates = []
    for start in range(0, draws, _CHUNK):
        idx = rng.integers(0, e.size, size=(min(_CHUNK, draws - start), e.size))
        de, dw = e[idx].sum(axis=1), w[idx].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates.append(np.where(dw > 0, 100.0 * de / np.maximum(dw, 1), np.where(de > 0, np.inf, 0.0)))
    return np.concatenate(rates)


def rate_interval(
    errors: Sequence[int], units: Sequence[int], level: float = 95.0, draws: int = DRAWS, seed: int = SEED
) -> Tuple[float, float]:
    """The `level` % bootstrap interval (low, high) of the corpus error rate (%)."""
    if not 0 < level < 100:
        raise ValueError(f"level must be a percentage between 0 and 100, not {level}")
    tail = (100.0 - level) / 2
    low, high = np.percentile(bootstrap_rates(errors, units, draws, seed), [tail, 100.0 - tail])
    return float(low), float(high)


def report_interval(
    report: ScoreReport, level: float = 95.0, draws: int = DRAWS, seed: int = SEED
) -> Tuple[float, float]:
    """rate_interval of a scored set: per utterance its errors (Sub + Del + Ins) and reference units."""
    return rate_interval([u.errors for u in report.utts], [len(u.ref) for u in report.utts], level, draws, seed)
