"""A corpus of your own, as a folder of audio files and a transcripts file per set, written as Kaldi data sets.

Input: one folder per set, `<corpus_dir>/<set>/` (e.g. `train/` and `test/`), holding
- the audio files, at any depth below it: any format libsndfile reads (.wav, .flac, .sph, .ogg, .aiff, .au),
  any sample rate and channel count (stage 2 resamples to --fs; of several channels the first is used);
- `transcripts`: one line per recording, `<file-stem> <transcript>`, the stem being the file name without its
  folder and extension (`spk01/utt_003.wav` -> `utt_003`), the transcript what the model is to output (kept
  as written: case, punctuation; runs of white space become one space);
- `speakers` (optional): one line per recording, `<file-stem> <speaker-id>`. Without it every recording is its
  own speaker (Kaldi's convention for unknown speakers).

Output: `<data_dir>/<set>/{wav.scp,text,utt2spk,spk2utt,utt2num_samples}`, sorted (C order). Utterance ids are
`<speaker>-<stem>`, or the stem itself where it already begins with `<speaker>-` or `<speaker>_` or speakers are
unknown, so that every id begins with its speaker id; wav.scp names the files by absolute path.

Dev set: with `dev_from=<set>` and `dev_speakers=N` or `dev_share=F`, `<set>` is also split into `<set>_nodev`
and `<set>_dev`, whole speakers held out as `cald_asr.corpora.dev_split` does (seeded with `seed`).

Problems in the input (a line without transcript, a stem twice, a stem without audio or audio without a line, a
file libsndfile cannot read, an id that is not a file name) are all reported in one error, by file and line.

Usage: python -m cald_asr.corpora.folder --corpus_dir DIR --data_dir data [--sets "train test"]
           [--dev_from train (--dev_speakers N | --dev_share F) [--seed S]]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile as sf

from cald_asr.corpora.cli import corpus_parser, run_main
from cald_asr.corpora.data_set import CorpusError, summary_line, write_data_set
from cald_asr.corpora.dev_split import split_dev
from cald_asr.data.kaldi_dir import DataDirError, iter_kv_lines

AUDIO_SUFFIXES = (".wav", ".flac", ".sph", ".nist", ".ogg", ".oga", ".aiff", ".aif", ".au")
TRANSCRIPTS = "transcripts"
SPEAKERS = "speakers"
MAX_LISTED = 20  # problems listed in the error; the rest are counted
SPHERE_HINT = (
    " (libsndfile reads uncompressed SPHERE only: a shorten-compressed file needs sph2pipe, e.g. wav.scp entries "
    "'<utt> sph2pipe -f wav <file> |' written by your own local/data.sh)"
)


def find_audio(set_dir: Path, problems: List[str]) -> Dict[str, Path]:
    """stem -> audio file, for every audio file below set_dir; a stem met twice is a problem."""
    found: Dict[str, Path] = {}
    for path in sorted(p for p in set_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        if path.stem in found:
            problems.append(f"{path}: the stem '{path.stem}' is also {found[path.stem]}; stems must be unique")
        else:
            found[path.stem] = path
    return found


def read_table(path: Path, what: str, problems: List[str]) -> Dict[str, Tuple[int, str]]:
    """stem -> (line, value) of a '<file-stem> <value>' file; missing values ('' in the table, so that the stem
    counts as listed) and repeated stems are problems."""
    table: Dict[str, Tuple[int, str]] = {}
    try:
        for line_no, stem, value in iter_kv_lines(path, allow_empty_value=True):
            if stem in table:
                problems.append(f"{path}:{line_no}: '{stem}' again (first on line {table[stem][0]})")
                continue
            if not value:
                problems.append(f"{path}:{line_no}: '{stem}' has no {what}")
            table[stem] = (line_no, " ".join(value.split()))
    except DataDirError as e:
        problems.append(str(e))
    return table


def _unsafe(name: str) -> bool:
    return "/" in name or ".." in name


def utterance_id(stem: str, speaker: Optional[str]) -> str:
    """<speaker>-<stem>, or the stem where it begins with its speaker already (or the speaker is unknown)."""
    if speaker is None or stem.startswith((f"{speaker}-", f"{speaker}_")):
        return stem
    return f"{speaker}-{stem}"


def read_set(set_dir: Path) -> Tuple[Dict[str, Tuple[str, str, Path]], List[str]]:
    """utt -> (speaker, transcript, audio file) of one set folder, and the problems found."""
    problems: List[str] = []
    if not set_dir.is_dir():
        raise CorpusError(f"{set_dir}: missing; expected a folder of audio files with a '{TRANSCRIPTS}' file")
    trn_path = set_dir / TRANSCRIPTS
    if not trn_path.is_file():
        raise CorpusError(f"{trn_path}: missing; expected lines '<file-stem> <transcript>'")
    audio = find_audio(set_dir, problems)
    texts = read_table(trn_path, "transcript", problems)
    spk_path = set_dir / SPEAKERS
    speakers = read_table(spk_path, "speaker", problems) if spk_path.is_file() else None
    for stem, (line_no, _) in texts.items():
        if stem not in audio:
            problems.append(f"{trn_path}:{line_no}: no audio file '{stem}.*' below {set_dir}")
        if speakers is not None and stem not in speakers:
            problems.append(f"{trn_path}:{line_no}: '{stem}' has no line in {spk_path}")
        if _unsafe(stem):
            problems.append(f"{trn_path}:{line_no}: '{stem}' contains '..': ids become file names")
    untranscribed = sorted(s for s in audio if s not in texts)
    if untranscribed:
        problems.append(
            f"{trn_path}: {len(untranscribed)} audio file(s) have no line, e.g. {audio[untranscribed[0]]}: add "
            "them, or move them out of the folder"
        )
    for stem, (line_no, spk) in (speakers or {}).items():
        if stem not in texts:
            problems.append(f"{spk_path}:{line_no}: '{stem}' has no line in {trn_path}")
        elif spk and (len(spk.split()) != 1 or _unsafe(spk)):
            problems.append(f"{spk_path}:{line_no}: speaker id '{spk}' must be one field without '/' or '..'")
    utts: Dict[str, Tuple[str, str, Path]] = {}
    for stem, (_, text) in texts.items():
        if stem in audio and text:
            spk = speakers[stem][1] if speakers is not None and stem in speakers else None
            utt = utterance_id(stem, spk)
            if utt in utts:  # e.g. stem 'a-1' of speaker 'a' and stem '1' of speaker 'a'
                problems.append(f"{trn_path}:{texts[stem][0]}: '{stem}' gives utterance id '{utt}' a second time")
            utts[utt] = (spk or utt, text, audio[stem].resolve())
    return utts, problems


def audio_lengths(utts: Dict[str, Tuple[str, str, Path]], problems: List[str]) -> Dict[str, Tuple[int, int]]:
    """utt -> (samples, rate), read from each file's header."""
    out: Dict[str, Tuple[int, int]] = {}
    for utt, (_, _, path) in utts.items():
        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError) as e:
            hint = SPHERE_HINT if path.suffix.lower() in (".sph", ".nist") else ""
            problems.append(f"{path}: cannot read audio ({e}){hint}")
            continue
        if info.frames <= 0:
            problems.append(f"{path}: no samples")
            continue
        out[utt] = (info.frames, info.samplerate)
    return out


def _raise(problems: List[str]) -> None:
    more = f"\n... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise CorpusError(f"{len(problems)} problem(s) in the corpus:\n" + "\n".join(problems[:MAX_LISTED]) + more)


def prepare_folder(
    corpus_dir,
    data_dir,
    sets: Sequence[str] = ("train", "test"),
    dev_from: Optional[str] = None,
    dev_speakers: Optional[int] = None,
    dev_share: Optional[float] = None,
    seed: int = 0,
) -> Dict[str, int]:
    """Write data/<set>/ for every set folder (and <dev_from>_nodev, <dev_from>_dev); returns utterance counts."""
    corpus_dir, data_dir = Path(corpus_dir), Path(data_dir)
    if dev_from is not None and dev_from not in sets:
        raise CorpusError(f"the dev set is to come from '{dev_from}', which is not one of the sets {list(sets)}")
    if dev_from is not None and (dev_speakers is None) == (dev_share is None):
        raise CorpusError("a dev set needs one of dev_speakers and dev_share")
    read = {s: read_set(corpus_dir / s) for s in sets}
    problems = [p for _, found in read.values() for p in found]
    lengths = {s: audio_lengths(utts, problems) for s, (utts, _) in read.items()}
    if problems:
        _raise(problems)
    counts, lines = {}, []
    for s, (utts, _) in read.items():
        if not utts:
            raise CorpusError(f"{corpus_dir / s / TRANSCRIPTS}: no utterances")
        write_data_set(
            data_dir / s,
            text={u: t for u, (_, t, _) in utts.items()},
            utt2spk={u: spk for u, (spk, _, _) in utts.items()},
            wav_scp={u: str(p) for u, (_, _, p) in utts.items()},
            extra={"utt2num_samples": {u: n for u, (n, _) in lengths[s].items()}},
        )
        seconds = sum(n / rate for n, rate in lengths[s].values())
        lines.append(summary_line(corpus_dir.name, s, len(utts), len({v[0] for v in utts.values()}), seconds))
        counts[s] = len(utts)
    print("\n".join(lines))
    if dev_from is not None:
        train, dev = data_dir / f"{dev_from}_nodev", data_dir / f"{dev_from}_dev"
        r = split_dev(data_dir / dev_from, train, dev, dev_speakers, dev_share, seed)
        print(
            f"{corpus_dir.name}: {dev_from} -> {train.name} ({r.train_utts} utts, {r.train_speakers} spk), "
            f"{dev.name} ({r.dev_utts} utts, {len(r.dev_speakers)} spk held out, seed {seed})"
        )
        counts[train.name], counts[dev.name] = r.train_utts, r.dev_utts
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = corpus_parser(__doc__, "folder holding one folder of audio files and a 'transcripts' file per set")
    p.add_argument("--sets", default="train test", help="the set folders, space-separated (default: train test)")
    p.add_argument("--dev_from", "--dev-from", default=None, help="the set a dev set is held out of (e.g. train)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--dev_speakers", "--dev-speakers", type=int, default=None, help="hold out this many speakers")
    how.add_argument("--dev_share", "--dev-share", type=float, default=None, help="or about this share of utterances")
    p.add_argument("--seed", type=int, default=0, help="shuffles the speakers before the hold-out (default 0)")

    def action(args):
        return prepare_folder(
            args.corpus_dir,
            args.data_dir,
            args.sets.split(),
            args.dev_from,
            args.dev_speakers,
            args.dev_share,
            args.seed,
        )

    return run_main(p, argv, action)


if __name__ == "__main__":
    sys.exit(main())
