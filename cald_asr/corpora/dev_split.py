"""Hold out a dev set of whole speakers from a Kaldi data dir, deterministically (Kaldi's
utils/subset_data_dir_tr_cv.sh does the same): for corpora that come with only a training and a test set.

The recipe needs a dev set (--valid_set): stage 5 keeps as best/ the checkpoint with the lowest dev WER.
Whole speakers are held out, so that, like a test set, it holds voices the model never trained on; where
speakers are unknown (utt2spk maps each utterance to itself, Kaldi's convention) that is one utterance each.

Which speakers: the C-sorted speaker ids are shuffled with numpy's default_rng(seed), then
- n_speakers=N: the first N of that order;
- share=F: the shortest prefix of that order whose utterances make at least F of the set's, or one speaker
  fewer when its share is nearer F (never fewer than one).
At least one speaker stays for training. The same dir, seed and option always give the same split.

Every file of the dir is split: text, utt2spk, wav.scp or feats.scp, segments (wav.scp then keeps the
recordings each half's segments use), utt2num_samples and any other file keyed by utterance; spk2utt is
written anew. Other files (not keyed by utterance) are copied to both halves unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.kaldi_dir import DataDirError, c_sort_key, read_kv, utt2spk_to_spk2utt, write_kv
from cald_asr.data.validate import validate_data_dir

DATA_DIR_MARKERS = ("utt2spk", "text", "wav.scp", "feats.scp")


class DevSplit(NamedTuple):
    train_utts: int
    dev_utts: int
    train_speakers: int
    dev_speakers: List[str]


def pick_dev_speakers(
    utts_per_speaker: Dict[str, int], n_speakers: Optional[int] = None, share: Optional[float] = None, seed: int = 0
) -> List[str]:
    """The held-out speakers (in seed-shuffled order): n_speakers of them, or those nearest `share` of the
    utterances; exactly one of the two must be given."""
    if (n_speakers is None) == (share is None):
        raise ValueError("give exactly one of n_speakers and share")
    spks = sorted(utts_per_speaker, key=c_sort_key)
    if len(spks) < 2:
        raise CorpusError(
            f"{len(spks)} speaker(s): holding out whole speakers needs at least 2 (give every utterance its own "
            "speaker in utt2spk, or prepare a dev set of its own)"
        )
    order = [spks[i] for i in np.random.default_rng(seed).permutation(len(spks))]
    if n_speakers is not None:
        if not 1 <= n_speakers < len(spks):
            raise CorpusError(f"cannot hold out {n_speakers} of {len(spks)} speakers: at least 1, and 1 must stay")
        return order[:n_speakers]
    if not 0.0 < share < 1.0:
        raise CorpusError(f"dev share {share} is not between 0 and 1")
    total = sum(utts_per_speaker.values())
    target, taken, k = share * total, 0, 0
    while k < len(order) - 1 and taken < target:
        taken += utts_per_speaker[order[k]]
        k += 1
    before = taken - utts_per_speaker[order[k - 1]]
    if k > 1 and abs(before - target) < abs(taken - target):
        k -= 1
    return order[:k]


def split_dev(
    src,
    train_dir,
    dev_dir,
    n_speakers: Optional[int] = None,
    share: Optional[float] = None,
    seed: int = 0,
) -> DevSplit:
    """Write train_dir (the speakers kept) and dev_dir (those held out) from the data dir `src`."""
    src, train_dir, dev_dir = Path(src), Path(train_dir), Path(dev_dir)
    problems = validate_data_dir(src)
    if problems:
        raise CorpusError(f"{src} is not a valid data dir ({len(problems)} problem(s), first: {problems[0]})")
    utt2spk = read_kv(src / "utt2spk")
    counts: Dict[str, int] = {}
    for spk in utt2spk.values():
        counts[spk] = counts.get(spk, 0) + 1
    try:
        dev_spks = pick_dev_speakers(counts, n_speakers, share, seed)
    except CorpusError as e:
        raise CorpusError(f"{src}/utt2spk: {e}") from None
    held = set(dev_spks)
    dev_utts = {u for u, s in utt2spk.items() if s in held}
    halves = {train_dir: set(utt2spk) - dev_utts, dev_dir: dev_utts}
    for out in halves:
        _clear(out, src)
    tables = _tables(src, set(utt2spk))
    for out, keep in halves.items():
        _write_half(src, out, tables, keep)
    return DevSplit(len(halves[train_dir]), len(dev_utts), len(counts) - len(held), sorted(held, key=c_sort_key))


def _tables(src: Path, utts: set) -> Dict[str, Optional[Dict[str, str]]]:
    """name -> its entries for a file keyed by utterance; None for a file copied as it is."""
    out: Dict[str, Optional[Dict[str, str]]] = {}
    for f in sorted(src.iterdir()):
        if not f.is_file() or f.name.startswith(".") or f.name == "spk2utt":
            continue
        try:
            table = read_kv(f, allow_empty_value=True)
        except (DataDirError, UnicodeDecodeError):
            table = None
        if f.name == "wav.scp" and (src / "segments").exists():
            out[f.name] = table  # keyed by recording: split through segments
        else:
            out[f.name] = table if table is not None and set(table) <= utts else None
    return out


def _write_half(src: Path, out: Path, tables: Dict[str, Optional[Dict[str, str]]], keep: set) -> None:
    out.mkdir(parents=True, exist_ok=True)
    recs = None
    if "segments" in tables and tables["segments"] is not None:
        recs = {tables["segments"][u].split()[0] for u in keep}
    for name, table in tables.items():
        if table is None:
            shutil.copy2(src / name, out / name)
        elif name == "wav.scp" and recs is not None:
            write_kv(out / name, {k: v for k, v in table.items() if k in recs})
        else:
            write_kv(out / name, {k: v for k, v in table.items() if k in keep})
    write_kv(out / "spk2utt", utt2spk_to_spk2utt(read_kv(out / "utt2spk")))


def _clear(out: Path, src: Path) -> None:
    """An output dir is written from scratch; one that is not a data dir (nor empty) is never removed."""
    if out.resolve() == src.resolve():
        raise CorpusError(f"{out}: an output dir cannot be the source dir")
    if not out.exists():
        return
    if not out.is_dir() or (any(out.iterdir()) and not any((out / n).exists() for n in DATA_DIR_MARKERS)):
        raise CorpusError(f"{out} exists and is not a data dir: not replacing it")
    shutil.rmtree(out)
