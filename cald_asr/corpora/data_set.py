"""Write one Kaldi data set (`data/<set>/`) consistently, and describe it in one summary line.

Every corpus module funnels its output through `write_data_set`, so the invariants Kaldi and ESPnet
tools rely on (same keys in every file, C-sorted, utterance ids prefixed by the speaker id) are
checked in one place instead of per corpus.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from cald_asr.data.kaldi_dir import utt2spk_to_spk2utt, write_kv


class CorpusError(ValueError):
    """A problem in a corpus' own files, formatted as 'file:line: message' or 'file: message'."""


def write_data_set(
    set_dir: os.PathLike | str,
    text: Mapping[str, str],
    utt2spk: Mapping[str, str],
    *,
    wav_scp: Optional[Mapping[str, str]] = None,
    feats_scp: Optional[Mapping[str, str]] = None,
    extra: Optional[Mapping[str, Mapping[str, object]]] = None,
) -> None:
    """Write text, utt2spk, spk2utt, wav.scp (or feats.scp) and any `extra` per-utterance files.

    Raises ValueError when the tables disagree: that is a bug in the caller, not in the corpus.
    """
    set_dir = Path(set_dir)
    if (wav_scp is None) == (feats_scp is None):
        raise ValueError(f"{set_dir}: give exactly one of wav_scp and feats_scp")
    tables = {"text": text, "utt2spk": utt2spk}
    tables["wav.scp" if wav_scp is not None else "feats.scp"] = wav_scp if wav_scp is not None else feats_scp
    tables.update(extra or {})
    keys = set(text)
    if not keys:
        raise ValueError(f"{set_dir}: no utterances")
    for name, table in tables.items():
        if set(table) != keys:
            diff = sorted(set(table) ^ keys)[:3]
            raise ValueError(f"{set_dir}/{name}: keys differ from text (e.g. {diff})")
    for utt, spk in utt2spk.items():
        # Kaldi tools assume sorting by utterance also groups speakers.
        if not utt.startswith(spk):
            raise ValueError(f"{set_dir}: utterance '{utt}' does not begin with its speaker id '{spk}'")
    for utt, words in text.items():
        if not str(words).strip():
            raise ValueError(f"{set_dir}: utterance '{utt}' has an empty transcript")
    set_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_kv(set_dir / name, table)
    write_kv(set_dir / "spk2utt", utt2spk_to_spk2utt(utt2spk))


def summary_line(corpus: str, set_name: str, n_utts: int, n_speakers: int, seconds: float) -> str:
    return f"{corpus}: {set_name:<14} {n_utts:6d} utts {n_speakers:4d} spk {seconds / 3600:8.3f} h"
