"""Helpers that build small real data dirs for the data-layer tests (always under pytest's tmp_path)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np

from cald_asr.data.kaldi_dir import utt2spk_to_spk2utt, write_kv

from shared_data import SHARED_DATA

FSDD = SHARED_DATA / "fsdd" / "recordings"
YESNO = SHARED_DATA / "yesno" / "waves_yesno"  # 8 kHz 16-bit; the name spells the transcript (1 = yes)
AN4_FEAT = SHARED_DATA / "an4_mfcc" / "feat" / "an4_clstk"
DIGITS = "zero one two three four five six seven eight nine".split()


def fsdd_utt(name: str):
    """'3_george_7' -> ('george_3_7', path, 'three', 'george'): utterance ids begin with the speaker."""
    digit, spk, idx = name.split("_")
    return f"{spk}_{digit}_{idx}", FSDD / f"{name}.wav", DIGITS[int(digit)], spk


def write_fsdd_dir(d: Path, names: Iterable[str]) -> Dict[str, Path]:
    """A valid wav.scp data dir over real FSDD recordings; returns utt -> wav path."""
    wav, text, utt2spk = {}, {}, {}
    for name in names:
        utt, path, word, spk = fsdd_utt(name)
        wav[utt], text[utt], utt2spk[utt] = str(path), word, spk
    write_kv(d / "wav.scp", wav)
    write_kv(d / "text", text)
    write_kv(d / "utt2spk", utt2spk)
    write_kv(d / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    return {u: Path(p) for u, p in wav.items()}


def yesno_names(n: int) -> list:
    return sorted(p.stem for p in YESNO.glob("*.wav"))[:n]


def yesno_text(name: str) -> str:
    return " ".join("YES" if c == "1" else "NO" for c in name.split("_"))


def write_yesno_dir(d: Path, n: int = 4, specs: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """A valid wav.scp data dir over the first n real yesno recordings (one speaker, 'yesno'); `specs`
    replaces the wav.scp value of some utterances (a bad copy, a pipe). Returns utt -> wav.scp value."""
    wav = {f"yesno_{name}": str(YESNO / f"{name}.wav") for name in yesno_names(n)}
    wav.update(specs or {})
    write_kv(d / "wav.scp", wav)
    write_kv(d / "text", {u: yesno_text(u[len("yesno_") :]) for u in wav})
    write_kv(d / "utt2spk", {u: "yesno" for u in wav})
    write_kv(d / "spk2utt", utt2spk_to_spk2utt({u: "yesno" for u in wav}))
    return wav


def read_an4_mfcc(path: Path) -> np.ndarray:
    """Sphinx MFCC file: big-endian int32 value count, then big-endian float32, 13 cepstra per frame."""
    raw = path.read_bytes()
    count = int(np.frombuffer(raw[:4], ">i4")[0])
    values = np.frombuffer(raw[4:], ">f4")
    assert values.size == count and count % 13 == 0, path
    return values.reshape(-1, 13).astype(np.float32)
