"""OpenSLR SLR1 "yesno" (one speaker, 60 recordings of 8 words), written as Kaldi data sets.

Input: `<corpus_dir>/waves_yesno/<b1>_<b2>_..._<b8>.wav`; the name is the transcript, 1 = YES, 0 = NO.
Other files there (README) are ignored.

Split, as in Kaldi's egs/yesno/s5 (whose listing-order half split puts every name starting with `1_`
in `test_yesno` and every name starting with `0_` in `train_yesno`): `test_yesno` = the 29 names
starting with `1_`; the 31 names starting with `0_`, sorted, give `train_dev` = positions 3, 9, 15,
21, 27 (spread over the list, 5 utterances) and `train_nodev` = the other 26. The split depends on the
names only, so there is no seed.

The one speaker is `yesno`; utterance ids are `yesno-<name>`; wav.scp names the original files by
absolute path; `utt2num_samples` is written too.

Usage: python -m cald_asr.corpora.yesno --corpus_dir DIR --data_dir data
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import soundfile as sf

from cald_asr.corpora.cli import corpus_parser, run_main
from cald_asr.corpora.data_set import CorpusError, summary_line, write_data_set

SPEAKER = "yesno"
WORDS = {"0": "NO", "1": "YES"}
DEV_POSITIONS = (3, 9, 15, 21, 27)

_NAME_RE = re.compile(r"^[01](_[01]){7}$")


def list_waves(corpus_dir: Path | str) -> List[Path]:
    wave_dir = Path(corpus_dir) / "waves_yesno"
    if not wave_dir.is_dir():
        raise CorpusError(f"{wave_dir}: missing; expected the yesno recordings waves_yesno/<0|1>_..._<0|1>.wav")
    paths = sorted(wave_dir.glob("*.wav"))
    if not paths:
        raise CorpusError(f"{wave_dir}: no .wav files")
    for path in paths:
        if not _NAME_RE.match(path.stem):
            raise CorpusError(f"{path}: file name is not eight 0/1 digits joined by '_' (e.g. 0_1_1_0_0_1_0_1.wav)")
    return paths


def split_names(names: Sequence[str]) -> Dict[str, List[str]]:
    train = sorted(n for n in names if n.startswith("0_"))
    dev = [train[i] for i in DEV_POSITIONS if i < len(train)]
    return {
        "train_nodev": [n for n in train if n not in dev],
        "train_dev": dev,
        "test_yesno": sorted(n for n in names if n.startswith("1_")),
    }


def prepare_yesno(corpus_dir, data_dir) -> Dict[str, int]:
    """Write data/{train_nodev,train_dev,test_yesno}; returns utterance counts per set."""
    paths = {p.stem: p.resolve() for p in list_waves(corpus_dir)}
    n_samples = {}
    for name, path in paths.items():
        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise CorpusError(f"{path}: cannot read audio ({e})") from None
        n_samples[name] = (info.frames, info.samplerate)
    lines, counts = [], {}
    for set_name, names in split_names(list(paths)).items():
        if not names:
            raise CorpusError(f"{Path(corpus_dir) / 'waves_yesno'}: no recordings for {set_name}")
        utts = {f"{SPEAKER}-{n}": n for n in names}
        write_data_set(
            Path(data_dir) / set_name,
            text={u: " ".join(WORDS[b] for b in n.split("_")) for u, n in utts.items()},
            utt2spk={u: SPEAKER for u in utts},
            wav_scp={u: str(paths[n]) for u, n in utts.items()},
            extra={"utt2num_samples": {u: n_samples[n][0] for u, n in utts.items()}},
        )
        seconds = sum(n_samples[n][0] / n_samples[n][1] for n in names)
        lines.append(summary_line("yesno", set_name, len(utts), 1, seconds))
        counts[set_name] = len(utts)
    print("\n".join(lines))
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = corpus_parser(__doc__, "folder holding waves_yesno/")
    return run_main(p, argv, lambda args: prepare_yesno(args.corpus_dir, args.data_dir))


if __name__ == "__main__":
    sys.exit(main())
