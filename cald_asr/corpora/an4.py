"""CMU AN4 (census) from Sphinx MFCC files, written as Kaldi feature data sets.

Input layout (`<corpus_dir>` = the `an4/` folder of the MFCC release):
- `etc/an4_{train,test}.transcription`: `TEXT (utt-name)` or `<s> TEXT </s> (utt-name)` per line;
- `etc/an4_{train,test}.fileids`: `an4_clstk/<spk>/<utt-name>` (train), `an4test_clstk/<spk>/<utt-name>` (test);
- `feat/<fileid>.mfc`: Sphinx MFCC, 13 cepstra per frame at 100 frames/s.

Sets: `train_nodev` (848), `train_dev` (100), `test` (130). The speaker is the folder name; the
utterance id is `<spk>-<utt-name>` (e.g. `fash-an251-fash-b`). Transcripts keep the corpus' upper
case; `<s>` and `</s>` are dropped.

Dev set: whole speakers, so that, like `test`, it holds voices the model never trained on. The
train speakers are shuffled with the seed and the first combination (in that order, depth first)
whose utterance counts add up to exactly 100 is taken. ESPnet's an4 recipe instead takes the first
100 utterances of the sorted list, which also cuts along speakers but is not seedable.

Features go to `data/<set>/feats.ark` (kaldiio, float32 matrices (T, 13)) with `feats.scp` holding
absolute paths, plus `utt2num_frames`.

Usage: python -m cald_asr.corpora.an4 --corpus_dir DIR --data_dir data [--seed N]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import kaldiio
import numpy as np

from cald_asr.corpora.cli import corpus_parser, run_main
from cald_asr.corpora.data_set import CorpusError, summary_line, write_data_set
from cald_asr.data.kaldi_dir import c_sort_key, read_kv

N_CEPSTRA = 13
FRAMES_PER_SECOND = 100
N_DEV = 100

_TRANSCRIPT_RE = re.compile(r"^(?P<text>.*?)\s*\((?P<utt>[^()\s]+)\)\s*$")


def read_sphinx_mfcc(path: Path | str) -> np.ndarray:
    """Read a Sphinx feature file: int32 value count, then float32 values, 13 per frame.

    Sphinx files are big-endian; like Sphinx itself, accept the byte-swapped (little-endian) variant
    when only that reading of the header matches the file size.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read MFCC file ({e.strerror})") from None
    if len(raw) < 4:
        raise CorpusError(f"{path}: {len(raw)} bytes, too short for the 4-byte Sphinx header")
    n_values = (len(raw) - 4) / 4
    for endian in (">", "<"):
        count = int(np.frombuffer(raw[:4], dtype=f"{endian}i4")[0])
        if count == n_values:
            break
    else:
        big = int(np.frombuffer(raw[:4], dtype=">i4")[0])
        raise CorpusError(
            f"{path}: header says {big} values but the file holds {n_values:g} "
            f"({len(raw)} bytes = 4-byte header + 4 bytes per value)"
        )
    if count == 0 or count % N_CEPSTRA:
        raise CorpusError(f"{path}: {count} values is not a positive multiple of {N_CEPSTRA} cepstra")
    feats = np.frombuffer(raw, dtype=f"{endian}f4", offset=4).astype(np.float32).reshape(-1, N_CEPSTRA)
    if not np.isfinite(feats).all():
        raise CorpusError(f"{path}: non-finite value in frame {int(np.argmax(~np.isfinite(feats).all(1)))}")
    return feats


def read_transcription(path: Path) -> Dict[str, str]:
    """utt-name -> transcript, in file order; errors name the file and line."""
    if not path.is_file():
        raise CorpusError(f"{path}: transcription file missing")
    out: Dict[str, str] = {}
    lines: Dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            m = _TRANSCRIPT_RE.match(line.rstrip("\r\n"))
            if not m:
                raise CorpusError(f"{path}:{line_no}: expected 'TEXT (utt-id)', got {line.strip()!r}")
            words = [w for w in m.group("text").split() if w not in ("<s>", "</s>")]
            utt = m.group("utt")
            if not words:
                raise CorpusError(f"{path}:{line_no}: empty transcript for '{utt}'")
            if utt in out:
                raise CorpusError(f"{path}:{line_no}: duplicate utterance '{utt}' (first on line {lines[utt]})")
            out[utt], lines[utt] = " ".join(words), line_no
    return out


def read_fileids(path: Path) -> Dict[str, Tuple[str, str]]:
    """utt-name -> (speaker, fileid); a fileid is `<set-folder>/<spk>/<utt-name>`."""
    if not path.is_file():
        raise CorpusError(f"{path}: fileids file missing")
    out: Dict[str, Tuple[str, str]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            fileid = line.strip()
            if not fileid:
                continue
            parts = fileid.split("/")
            if len(parts) != 3 or not all(parts):
                raise CorpusError(f"{path}:{line_no}: expected '<folder>/<speaker>/<utt-id>', got {fileid!r}")
            if parts[2] in out:
                raise CorpusError(f"{path}:{line_no}: duplicate utterance '{parts[2]}'")
            out[parts[2]] = (parts[1], fileid)
    return out


def load_part(corpus_dir: Path, part: str) -> Dict[str, Tuple[str, str, np.ndarray]]:
    """Utterances of `an4_<part>` as utt-id -> (speaker, transcript, features)."""
    trans_path = corpus_dir / "etc" / f"an4_{part}.transcription"
    ids_path = corpus_dir / "etc" / f"an4_{part}.fileids"
    texts, fileids = read_transcription(trans_path), read_fileids(ids_path)
    missing = [u for u in texts if u not in fileids]
    if missing:
        raise CorpusError(f"{ids_path}: no entry for '{missing[0]}' of {trans_path} ({len(missing)} missing)")
    extra = [u for u in fileids if u not in texts]
    if extra:
        raise CorpusError(f"{trans_path}: no transcript for '{extra[0]}' listed in {ids_path} ({len(extra)} missing)")
    out = {}
    for name, (spk, fileid) in fileids.items():
        out[f"{spk}-{name}"] = (spk, texts[name], read_sphinx_mfcc(corpus_dir / "feat" / f"{fileid}.mfc"))
    return out


def pick_dev_speakers(utts_per_speaker: Dict[str, int], n_dev: int, seed: int) -> List[str]:
    """Whole speakers, in seed-shuffled order, whose utterance counts sum to exactly n_dev."""
    spks = sorted(utts_per_speaker)
    order = [spks[i] for i in np.random.default_rng(seed).permutation(len(spks))]
    failed = set()

    def search(i: int, remaining: int) -> Optional[List[str]]:
        if remaining == 0:
            return []
        if i == len(order) or (i, remaining) in failed:
            return None
        n = utts_per_speaker[order[i]]
        if n <= remaining:
            rest = search(i + 1, remaining - n)
            if rest is not None:
                return [order[i]] + rest
        rest = search(i + 1, remaining)
        if rest is None:
            failed.add((i, remaining))
        return rest

    chosen = search(0, n_dev)
    if chosen is None:
        raise CorpusError(f"no set of whole training speakers has exactly {n_dev} utterances")
    return sorted(chosen)


def _write_feature_set(set_dir: Path, utts: Dict[str, Tuple[str, str, np.ndarray]]) -> str:
    set_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted(utts, key=c_sort_key)
    ark = (set_dir / "feats.ark").resolve()
    # kaldiio knows the byte offsets; its scp is re-written through write_data_set with the other tables.
    tmp_scp = set_dir / "feats.scp.kaldiio"
    kaldiio.save_ark(str(ark), {k: utts[k][2] for k in keys}, scp=str(tmp_scp))
    feats_scp = read_kv(tmp_scp)
    tmp_scp.unlink()
    frames = {k: utts[k][2].shape[0] for k in keys}
    write_data_set(
        set_dir,
        {k: utts[k][1] for k in keys},
        {k: utts[k][0] for k in keys},
        feats_scp=feats_scp,
        extra={"utt2num_frames": frames},
    )
    n_spk = len({utts[k][0] for k in keys})
    return summary_line("an4", set_dir.name, len(keys), n_spk, sum(frames.values()) / FRAMES_PER_SECOND)


def prepare_an4(corpus_dir, data_dir, seed: int = 2024, n_dev: int = N_DEV) -> Dict[str, int]:
    """Write data/{train_nodev,train_dev,test}; returns utterance counts per set."""
    corpus_dir, data_dir = Path(corpus_dir), Path(data_dir)
    train, test = load_part(corpus_dir, "train"), load_part(corpus_dir, "test")
    per_spk: Dict[str, int] = {}
    for spk, _, _ in train.values():
        per_spk[spk] = per_spk.get(spk, 0) + 1
    dev_spks = set(pick_dev_speakers(per_spk, n_dev, seed))
    sets = {
        "train_nodev": {u: v for u, v in train.items() if v[0] not in dev_spks},
        "train_dev": {u: v for u, v in train.items() if v[0] in dev_spks},
        "test": test,
    }
    lines = [_write_feature_set(data_dir / name, utts) for name, utts in sets.items()]
    print("\n".join(lines))
    return {name: len(utts) for name, utts in sets.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = corpus_parser(__doc__, "folder holding etc/ and feat/")
    p.add_argument("--seed", type=int, default=2024, help="picks the dev speakers")
    return run_main(p, argv, lambda args: prepare_an4(args.corpus_dir, args.data_dir, args.seed))


if __name__ == "__main__":
    sys.exit(main())
