"""Noisy copies of a formatted (dump) dir for robustness evaluation: every utterance with white Gaussian noise
mixed in at one SNR, so that a model's WER under noise is measured on the very utterances of its clean WER.

The SNR is exact per utterance: augment.mix_at_snr scales the noise so that 10 log10(P(speech) / P(noise))
is the asked value, powers over the whole utterance. The noise of an utterance comes from a generator seeded
by (seed, utterance id) alone: the same command writes the same bytes on every run and machine, an
utterance's noise does not depend on which other utterances the set holds, and it is the same waveform at
every SNR (only its gain differs), so that the columns of the robustness table differ in the SNR only.
A mixture that would clip in 16-bit PCM is scaled down as a whole (speech and noise alike, so its SNR
stays) and counted in the summary.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from cald_asr.data.audio import AudioError, load_audio, write_wav
from cald_asr.data.augment import mix_at_snr
from cald_asr.data.kaldi_dir import DataDirError, read_kv, write_kv

# the input files a noisy copy depends on (.done: the dir was formatted again)
INPUT_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", ".done")
COPIED = ("text", "utt2spk", "spk2utt")  # the same in the noisy copy, byte for byte
PCM16_PEAK = 32767 / 32768  # the largest sample 16-bit PCM holds
_SALT = 0x4E4F4953  # keeps these streams apart from any other generator seeded with the same seed


@dataclass
class NoisyResult:
    n: int = 0
    seconds: float = 0.0
    scaled: int = 0  # mixtures scaled down so as not to clip
    max_cut_db: float = 0.0  # the largest of those scalings
    skipped: bool = False  # the output was up to date

    def summary(self, in_dir, out_dir, snr_db: str, seed: int) -> str:
        if self.skipped:
            return f"make_noisy_set: {out_dir} is up to date with {in_dir} (use --force to redo)"
        out = (
            f"make_noisy_set: {in_dir} -> {out_dir}: {self.n} utterance(s) ({self.seconds:.1f} s) with white "
            f"Gaussian noise at SNR {snr_db} dB (seed {seed})"
        )
        if self.scaled:
            out += f"; {self.scaled} scaled down by up to {self.max_cut_db:.1f} dB so as not to clip (SNR kept)"
        return out


def noisy_name(in_dir, snr_db: str) -> Path:
    """Where the copy of `in_dir` at `snr_db` (as written: 20 -> <in_dir>_snr20) goes."""
    return Path(f"{Path(in_dir)}_snr{snr_db}")


def check_snr(snr_db: str) -> float:
    try:
        value = float(snr_db)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"SNR '{snr_db}' is not a number of dB")
    return value


def utterance_noise(utt: str, n: int, seed: int) -> np.ndarray:
    """n samples of unit-variance white Gaussian noise, the same for the same (utt, seed) wherever drawn."""
    digest = hashlib.sha256(utt.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([_SALT, int(seed), *words]).standard_normal(n)


def noisy_utterance(x: np.ndarray, utt: str, snr_db: float, seed: int) -> Tuple[np.ndarray, float]:
    """(x with utterance_noise at exactly snr_db, the gain (<= 1) applied to the mixture so as not to clip)."""
    y = mix_at_snr(x, utterance_noise(utt, x.shape[0], seed), snr_db).astype(np.float64)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    gain = PCM16_PEAK / peak if peak > PCM16_PEAK else 1.0
    return (y * gain).astype(np.float32), gain


def make_noisy_dir(in_dir, out_dir, snr_db: str, seed: int = 0, force: bool = False) -> NoisyResult:
    """Write out_dir: in_dir's utterances with white noise at snr_db (a number as written, e.g. "20")."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    snr = check_snr(snr_db)
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError(f"--in_dir and --out_dir are the same directory ({in_dir}); the input would be overwritten")
    stamp = {"in_dir": str(in_dir.absolute()), "snr_db": snr, "seed": int(seed), "noise": "white"}
    if not force and _up_to_date(in_dir, out_dir, stamp):
        return NoisyResult(skipped=True)
    wavs = _check_input(in_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ".done").unlink(missing_ok=True)  # not done until every utterance is written
    wav_dir = (out_dir / "data").absolute()
    wav_dir.mkdir(exist_ok=True)
    result = NoisyResult()
    lengths: Dict[str, int] = {}
    fs_seen = None
    for utt, spec in wavs.items():
        try:
            x, fs = load_audio(spec)
        except AudioError as e:
            raise DataDirError(f"{in_dir / 'wav.scp'}: utterance {utt}: {e}") from None
        y, gain = noisy_utterance(x, utt, snr, seed)
        if gain < 1.0:
            result.scaled += 1
            result.max_cut_db = max(result.max_cut_db, -20.0 * math.log10(gain))
        write_wav(wav_dir / f"{utt}.wav", y, fs)
        lengths[utt] = y.shape[0]
        result.seconds += y.shape[0] / fs
        fs_seen = fs
    result.n = len(lengths)
    write_kv(out_dir / "wav.scp", {u: str(wav_dir / f"{u}.wav") for u in lengths})
    write_kv(out_dir / "utt2num_samples", lengths)
    for name in COPIED:
        if (in_dir / name).exists():
            shutil.copyfile(in_dir / name, out_dir / name)
    (out_dir / "feats_type").write_text("raw\n", encoding="utf-8")
    for f in wav_dir.glob("*.wav"):
        if f.stem not in lengths:  # left from an earlier run on another input
            f.unlink()
    (out_dir / ".done").write_text(json.dumps({**stamp, "fs": fs_seen}, sort_keys=True) + "\n", encoding="utf-8")
    return result


def _check_input(in_dir: Path) -> Dict[str, str]:
    if not (in_dir / "wav.scp").is_file():
        if (in_dir / "feats.scp").is_file():
            raise ValueError(
                f"{in_dir} holds features (feats.scp), not audio: noise is mixed into audio (--feats_type raw)"
            )
        raise DataDirError(f"{in_dir}: no wav.scp (a formatted dir of stage 2 is expected)")
    wavs = read_kv(in_dir / "wav.scp")
    if not wavs:
        raise DataDirError(f"{in_dir / 'wav.scp'}: no utterance")
    return wavs


def _up_to_date(in_dir: Path, out_dir: Path, stamp: dict) -> bool:
    done = out_dir / ".done"
    if not done.is_file():
        return False
    try:
        recorded = json.loads(done.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    if {k: recorded.get(k) for k in stamp} != stamp:
        return False  # another input, SNR or seed: this output does not answer the call
    newest = max(((in_dir / n).stat().st_mtime for n in INPUT_FILES if (in_dir / n).exists()), default=0.0)
    return done.stat().st_mtime > newest
