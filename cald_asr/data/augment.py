"""Waveform augmentation for training, the same for the Std. run and CALD: speed perturbation, reverberation
with a synthetic room impulse response, and additive noise at a random SNR (coloured noise, or babble made of
other training utterances), each applied with its own probability, in that order.

Why here: a student converted on clean speech alone learns what the teacher's attention does on that narrow
input; how the teacher behaves on noisy or reverberant speech is never distilled, and the student collapses
where the teacher does not. With augmentation the batch is augmented before the model reads it, so in CALD
the teacher reads the same augmented batch and the layer loss distils its behaviour off the clean manifold.

Every draw comes from a generator seeded by (seed, epoch, utterance index): an utterance gets the same
augmentation in an epoch whoever reads it (any rank, a DataLoader worker, a resumed run), and another one
in the next epoch. The training config's `augment:` block (cald_asr/train/options.py) sets it up:

    augment:
      speed: {prob: 0.3, factors: [0.9, 1.1]}
      reverb: {prob: 0.2, rt60_s: [0.2, 0.8]}
      noise: {prob: 0.5, snr_db: [0, 20], colours: [white, pink, brown]}
      babble: {prob: 0.2, snr_db: [5, 20], utterances: [1, 3]}
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import soxr
import torch

from cald_asr.data.audio import RESAMPLE_QUALITY

# 1/f^beta power spectra: white (flat), pink (-3 dB per octave), brown (-6 dB per octave)
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
# the augmentations and their options, with the defaults an empty block gets
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "speed": {"prob": 0.0, "factors": [0.9, 1.1]},
    "reverb": {"prob": 0.0, "rt60_s": [0.2, 0.8]},
    "noise": {"prob": 0.0, "snr_db": [0.0, 20.0], "colours": ["white", "pink", "brown"]},
    "babble": {"prob": 0.0, "snr_db": [5.0, 20.0], "utterances": [1, 3]},
}
_SALT = 0x41554720  # keeps these streams apart from any other generator seeded with the run's seed


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """x + g * noise with g such that 10 log10(P(x) / P(g * noise)) = snr_db, powers over the whole
    utterance (the usual definition of an utterance's SNR). A silent x is returned unchanged."""
    px, pn = power(x), power(noise)
    if px == 0.0 or pn == 0.0:
        return x
    g = math.sqrt(px / (pn * 10.0 ** (snr_db / 10.0)))
    return (x.astype(np.float64) + g * noise).astype(np.float32)


def coloured_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """n samples of Gaussian noise whose power spectrum falls as 1/f^beta (0 white, 1 pink, 2 brown),
    scaled to unit power."""
    white = rng.standard_normal(n)
    if beta == 0.0:
        noise = white
    else:
        spec = np.fft.rfft(white)
        f = np.arange(spec.shape[0], dtype=np.float64)
        f[0] = f[1] if spec.shape[0] > 1 else 1.0  # no infinite DC gain
        noise = np.fft.irfft(spec / f ** (beta / 2.0), n)
    noise = noise - noise.mean()
    return noise / math.sqrt(max(power(noise), 1e-20))


def synthetic_rir(fs: int, rt60_s: float, rng: np.random.Generator, drr_db: float = 0.0) -> np.ndarray:
    """A room impulse response: the direct path, then a tail of Gaussian noise whose amplitude decays 60 dB
    over rt60_s (exp(-ln(1000) t / rt60)), rt60_s long, with drr_db the ratio of direct to tail energy;
    scaled to unit energy."""
    n = max(2, int(round(rt60_s * fs)))
    t = np.arange(1, n) / fs
    tail = rng.standard_normal(n - 1) * np.exp(-math.log(1000.0) * t / rt60_s)
    tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / float(np.sum(tail * tail)))
    h = np.concatenate([[1.0], tail])
    return h / math.sqrt(float(np.sum(h * h)))


def reverberate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """x convolved with h, cut to x's length (the tail past the end is lost, as when recording stops), at x's
    power (reverberation changes the room, not the talker's level)."""
    n = x.shape[0] + h.shape[0] - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: x.shape[0]]
    py = power(y)
    return (y * math.sqrt(power(x) / py) if py > 0 else y).astype(np.float32)


def speed_length(n: int, factor: float) -> int:
    """Samples after speed perturbation by `factor` (>1 faster, shorter), as soxr gives them."""
    return max(1, int(round(n / factor)))


def speed_perturb(x: np.ndarray, factor: float, fs: int) -> np.ndarray:
    """Kaldi's and ESPnet's speed perturbation (sox speed): tempo and pitch both scale by `factor`, i.e. the
    samples are read as if recorded at fs * factor and resampled to fs."""
    if factor == 1.0:
        return x
    y = soxr.resample(x, fs * factor, fs, quality=RESAMPLE_QUALITY).astype(np.float32)
    n = speed_length(x.shape[0], factor)
    return y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))


def merged_conf(conf: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The augment: block with every augmentation's defaults filled in."""
    conf = conf or {}
    return {k: {**v, **(conf.get(k) or {})} for k, v in DEFAULTS.items()}


def active(conf: Optional[Dict[str, Any]]) -> bool:
    return any(v["prob"] > 0 for v in merged_conf(conf).values())


class Augmenter:
    """Augments one utterance's waveform, keyed by (epoch, index); `pool(i)` gives training utterance i's
    clean waveform (babble), `pool_size` how many there are."""

    def __init__(
        self,
        conf: Optional[Dict[str, Any]],
        fs: int,
        seed: int,
        pool: Optional[Callable[[int], np.ndarray]] = None,
        pool_size: int = 0,
    ):
        self.conf, self.fs, self.seed = merged_conf(conf), int(fs), int(seed)
        self.pool, self.pool_size = pool, int(pool_size)
        if self.conf["babble"]["prob"] > 0 and (pool is None or self.pool_size < 2):
            raise ValueError("augment.babble needs other training utterances to mix in")
        unknown = sorted(set(self.conf["noise"]["colours"]) - set(COLOURS))
        if unknown:
            raise ValueError(f"augment.noise.colours: unknown {unknown}; known: {', '.join(COLOURS)}")

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([_SALT, self.seed, int(epoch), int(index)])

    def speed_factor(self, epoch: int, index: int) -> float:
        """The speed factor of utterance `index` in `epoch` (1.0 if not perturbed): the generator's first draws,
        so that lengths are known before any audio is read (the trainer normalises by them)."""
        c, rng = self.conf["speed"], self.rng(epoch, index)
        if c["prob"] > 0 and rng.random() < c["prob"] and c["factors"]:
            return float(c["factors"][int(rng.integers(len(c["factors"])))])
        return 1.0

    def length(self, n: int, epoch: int, index: int) -> int:
        factor = self.speed_factor(epoch, index)
        return n if factor == 1.0 else speed_length(n, factor)

    def __call__(self, x: np.ndarray, epoch: int, index: int) -> np.ndarray:
        rng = self.rng(epoch, index)
        c = self.conf
        if c["speed"]["prob"] > 0 and rng.random() < c["speed"]["prob"] and c["speed"]["factors"]:
            x = speed_perturb(x, float(c["speed"]["factors"][int(rng.integers(len(c["speed"]["factors"])))]), self.fs)
        if c["reverb"]["prob"] > 0 and rng.random() < c["reverb"]["prob"]:
            x = reverberate(x, synthetic_rir(self.fs, float(rng.uniform(*c["reverb"]["rt60_s"])), rng))
        if c["noise"]["prob"] > 0 and rng.random() < c["noise"]["prob"]:
            beta = COLOURS[c["noise"]["colours"][int(rng.integers(len(c["noise"]["colours"])))]]
            x = mix_at_snr(x, coloured_noise(x.shape[0], beta, rng), float(rng.uniform(*c["noise"]["snr_db"])))
        if c["babble"]["prob"] > 0 and rng.random() < c["babble"]["prob"]:
            x = mix_at_snr(x, self._babble(x.shape[0], index, rng), float(rng.uniform(*c["babble"]["snr_db"])))
        return x

    def _babble(self, n: int, index: int, rng: np.random.Generator) -> np.ndarray:
        """The sum of 1..k other training utterances, each tiled or cut to n samples at a random offset."""
        lo, hi = self.conf["babble"]["utterances"]
        k = int(rng.integers(lo, hi + 1))
        candidates = rng.choice(self.pool_size, size=min(k + 1, self.pool_size), replace=False)
        others = [int(j) for j in candidates if j != index][:k]
        total = np.zeros(n)
        for j in others:
            y = self.pool(j).astype(np.float64)
            y = np.tile(y, -(-n // y.shape[0]) + 1)
            start = int(rng.integers(y.shape[0] - n + 1))
            seg = y[start : start + n]
            total += seg / math.sqrt(max(power(seg), 1e-20))
        return total


class AugmentedDataset(torch.utils.data.Dataset):
    """A training set whose waveforms are augmented (the trainer calls set_epoch at each epoch); `lengths` stay
    the clean ones (batching), `length_of(i)` is utterance i's length as the model reads it this epoch."""

    def __init__(self, base, augmenter: Augmenter):
        self.base, self.augmenter, self.epoch = base, augmenter, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str):  # lengths, utt_ids, texts, ... of the base set
        if name in ("base", "augmenter", "epoch"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def length_of(self, index: int) -> int:
        return self.augmenter.length(self.base.lengths[index], self.epoch, index)

    def __getitem__(self, index: int) -> Dict:
        item = dict(self.base[index])
        x = item["speech"].numpy() if torch.is_tensor(item["speech"]) else np.asarray(item["speech"])
        item["speech"] = torch.from_numpy(np.ascontiguousarray(self.augmenter(x, self.epoch, index), dtype=np.float32))
        return item


def augment_dataset(dataset, conf: Optional[Dict[str, Any]], fs: int, seed: int):
    """`dataset` augmented as `conf` says, or `dataset` itself when no augmentation is on. Audio input only."""
    if not active(conf):
        return dataset
    if getattr(dataset, "speech_type", "sound") != "sound":
        raise ValueError(
            f"augment: waveform augmentation needs audio input (wav.scp); {dataset.data_dir} holds features"
        )
    pool = lambda j: dataset[j]["speech"].numpy()  # noqa: E731
    return AugmentedDataset(dataset, Augmenter(conf, fs, seed, pool, len(dataset)))


def step_lengths(dataset, indices: Sequence[int]) -> list:
    """The lengths the model reads for these utterances (augmented ones where the set is augmented)."""
    length_of = getattr(dataset, "length_of", None)
    return [length_of(i) if length_of else dataset.lengths[i] for i in indices]
