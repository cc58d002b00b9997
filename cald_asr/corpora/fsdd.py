"""Free Spoken Digit Dataset (FSDD) turned into a connected-digit corpus, written as Kaldi data sets.

Input: `<corpus_dir>/recordings/{digit}_{speaker}_{index}.wav` (8 kHz mono 16-bit; 6 speakers x 10
digits x 50 takes). The split follows the take index, so no recording is shared between sets:
index 0-4 -> test (the official FSDD test set), 5-9 -> dev, 10-49 -> train.

Sets (utterance ids begin with the speaker id):
- `train` (500 per speaker), `dev`, `test` (50 per speaker): each utterance joins 1-7 recordings of
  one speaker, 100 ms of silence before and after, 50-300 ms of silence (zeros) between recordings.
  Recordings are drawn in passes: shuffle the speaker's recordings of the split, cut the shuffled
  list into groups of 1-7, repeat until the speaker has enough utterances; the first pass always
  completes, so every recording of a split is used at least once. Ids `<spk>-<set>-<k:04d>`.
- `test_isolated`: the 300 official test recordings unchanged (wav.scp names the original files),
  ids `<spk>-isolated-<digit>-<index>`.
- `test_long`: per speaker two long streams from the speaker's test recordings, with durations drawn
  in [60, 150] s and [150, 300] s; same gap rule; the trailing silence pads the stream to exactly the
  drawn duration. Ids `<spk>-long-1`, `<spk>-long-2`.
Transcripts are lower-case digit words ("three one four"). Generated audio is written as 8 kHz
16-bit PCM to `<audio_dir>/<set>/<utt>.wav`; wav.scp holds absolute paths.

Besides the Kaldi files each set has `utt2num_samples`, `utt2sources` (the recording names, in order)
and `utt2onsets` (the first sample of each of those recordings inside the utterance).

Every random choice comes from a generator seeded by (seed, set, speaker), so the output is a
function of the seed alone, and restricting `speakers` leaves the other speakers' utterances unchanged.

Usage: python -m cald_asr.corpora.fsdd --corpus_dir DIR --data_dir data [--audio_dir DIR] [--seed N]
"""

from __future__ import annotations

import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from cald_asr.corpora.cli import corpus_parser, run_main
from cald_asr.corpora.data_set import CorpusError, summary_line, write_data_set

SAMPLE_RATE = 8000
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TRAIN_UTTS_PER_SPEAKER = 500
EVAL_UTTS_PER_SPEAKER = 50
MAX_RECORDINGS_PER_UTT = 7
GAP_SAMPLES = (SAMPLE_RATE * 50 // 1000, SAMPLE_RATE * 300 // 1000)  # inclusive bounds
EDGE_SAMPLES = SAMPLE_RATE * 100 // 1000
LONG_STREAM_SECONDS = ((60.0, 150.0), (150.0, 300.0))
SET_NAMES = ("train", "dev", "test", "test_isolated", "test_long")

_NAME_RE = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)$")


@dataclass(frozen=True)
class Recording:
    name: str  # file stem, e.g. "7_george_3"
    digit: int
    speaker: str
    index: int
    path: Path
    samples: np.ndarray  # int16

    @property
    def split(self) -> str:
        return "test" if self.index < 5 else "dev" if self.index < 10 else "train"


def read_recordings(corpus_dir: Path | str, speakers: Optional[Sequence[str]] = None) -> Dict[str, Recording]:
    """Load every `recordings/*.wav` (of the given speakers), checking names and audio format."""
    rec_dir = Path(corpus_dir) / "recordings"
    if not rec_dir.is_dir():
        raise CorpusError(f"{rec_dir}: missing; expected FSDD files recordings/{{digit}}_{{speaker}}_{{index}}.wav")
    paths = sorted(rec_dir.glob("*.wav"))
    if not paths:
        raise CorpusError(f"{rec_dir}: no .wav files")
    parsed = []
    for path in paths:
        m = _NAME_RE.match(path.stem)
        if not m:
            raise CorpusError(f"{path}: file name is not {{digit}}_{{speaker}}_{{index}}.wav")
        parsed.append((path, int(m.group(1)), m.group(2), int(m.group(3))))
    known = sorted({spk for _, _, spk, _ in parsed})
    wanted = set(known) if speakers is None else set(speakers)
    unknown = sorted(wanted - set(known))
    if unknown:
        raise CorpusError(f"{rec_dir}: no recordings of speaker(s) {unknown}; present: {known}")
    out: Dict[str, Recording] = {}
    for path, digit, spk, index in parsed:
        if spk in wanted:
            out[path.stem] = Recording(path.stem, digit, spk, index, path.resolve(), _read_pcm16(path))
    return out


def _read_pcm16(path: Path) -> np.ndarray:
    try:
        info = sf.info(str(path))
        samples, _ = sf.read(str(path), dtype="int16", always_2d=False)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise CorpusError(f"{path}: cannot read audio ({e})") from None
    if info.samplerate != SAMPLE_RATE or info.channels != 1:
        raise CorpusError(
            f"{path}: expected {SAMPLE_RATE} Hz mono, got {info.samplerate} Hz, {info.channels} channel(s)"
        )
    if samples.size == 0:
        raise CorpusError(f"{path}: no samples")
    return samples


def _rng(seed: int, set_name: str, speaker: str) -> np.random.Generator:
    # crc32 rather than hash(): Python salts str hashes per process.
    return np.random.default_rng([seed, zlib.crc32(set_name.encode()), zlib.crc32(speaker.encode())])


def _gap(rng: np.random.Generator) -> int:
    return int(rng.integers(GAP_SAMPLES[0], GAP_SAMPLES[1] + 1))


def group_recordings(rng: np.random.Generator, pool: Sequence[Recording], n_utts: int) -> List[List[Recording]]:
    """Shuffle-and-chunk passes over `pool` until `n_utts` groups exist; the first pass is never cut short."""
    groups: List[List[Recording]] = []
    first_pass_groups = 0
    while not first_pass_groups or len(groups) < n_utts:
        order = rng.permutation(len(pool))
        pos = 0
        while pos < len(order):
            size = int(rng.integers(1, MAX_RECORDINGS_PER_UTT + 1))
            groups.append([pool[i] for i in order[pos : pos + size]])
            pos += size
        first_pass_groups = first_pass_groups or len(groups)
    return groups[: max(n_utts, first_pass_groups)]


def concatenate(rng: np.random.Generator, parts: Sequence[Recording]) -> Tuple[np.ndarray, List[int]]:
    """Join parts with random 50-300 ms gaps and 100 ms of silence at both ends; returns audio and onsets."""
    gaps = [0] + [_gap(rng) for _ in parts[1:]]
    total = 2 * EDGE_SAMPLES + sum(gaps) + sum(r.samples.size for r in parts)
    return _place(parts, gaps, total)


def long_stream(
    rng: np.random.Generator, pool: Sequence[Recording], seconds_range: Tuple[float, float]
) -> Tuple[np.ndarray, List[Recording], List[int]]:
    """A stream of exactly a drawn duration, filled from passes over the shuffled pool."""
    return fill_stream(rng, pool, int(round(rng.uniform(*seconds_range) * SAMPLE_RATE)))


def fill_stream(
    rng: np.random.Generator, pool: Sequence[Recording], total: int
) -> Tuple[np.ndarray, List[Recording], List[int]]:
    """A stream of exactly `total` samples: passes over the shuffled pool, with the gap rule, until the next
    recording would not fit; the rest is silence."""
    parts: List[Recording] = []
    gaps: List[int] = []
    used = 2 * EDGE_SAMPLES
    while True:
        for i in rng.permutation(len(pool)):
            gap = _gap(rng) if parts else 0
            if used + gap + pool[i].samples.size > total:
                audio, onsets = _place(parts, gaps, total)
                return audio, parts, onsets
            gaps.append(gap)
            parts.append(pool[i])
            used += gap + pool[i].samples.size


def _place(parts: Sequence[Recording], gaps: Sequence[int], total: int) -> Tuple[np.ndarray, List[int]]:
    """Lay parts out after a 100 ms lead, gaps[k] samples of silence before part k; zeros elsewhere."""
    audio = np.zeros(total, dtype=np.int16)
    onsets, pos = [], EDGE_SAMPLES
    for gap, rec in zip(gaps, parts):
        pos += gap
        onsets.append(pos)
        audio[pos : pos + rec.samples.size] = rec.samples
        pos += rec.samples.size
    return audio, onsets


def _transcript(parts: Iterable[Recording]) -> str:
    return " ".join(DIGIT_WORDS[r.digit] for r in parts)


class _SetWriter:
    """Collects one set's tables while its audio is written, so audio never piles up in memory."""

    def __init__(self, name: str, data_dir: Path, audio_dir: Path):
        self.name, self.set_dir, self.audio_dir = name, data_dir / name, audio_dir / name
        self.wav, self.text, self.utt2spk, self.samples, self.sources, self.onsets = {}, {}, {}, {}, {}, {}

    def add(
        self,
        utt: str,
        speaker: str,
        parts: Sequence[Recording],
        onsets: Sequence[int],
        audio: Optional[np.ndarray] = None,
    ) -> None:
        if audio is None:  # an original recording, used as it is
            path, n = parts[0].path, parts[0].samples.size
        else:
            path, n = self.audio_dir / f"{utt}.wav", audio.size
            self.audio_dir.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        self.wav[utt], self.samples[utt] = str(path), n
        self.text[utt], self.utt2spk[utt] = _transcript(parts), speaker
        self.sources[utt] = " ".join(r.name for r in parts)
        self.onsets[utt] = " ".join(str(o) for o in onsets)

    def close(self) -> str:
        write_data_set(
            self.set_dir,
            self.text,
            self.utt2spk,
            wav_scp=self.wav,
            extra={"utt2num_samples": self.samples, "utt2sources": self.sources, "utt2onsets": self.onsets},
        )
        if self.audio_dir.is_dir():  # a rerun must not leave audio of utterances that no longer exist
            keep = {f"{u}.wav" for u in self.wav}
            for stale in self.audio_dir.glob("*.wav"):
                if stale.name not in keep:
                    stale.unlink()
        seconds = sum(self.samples.values()) / SAMPLE_RATE
        return summary_line("fsdd", self.name, len(self.wav), len(set(self.utt2spk.values())), seconds)


def prepare_fsdd(
    corpus_dir, data_dir, audio_dir=None, seed: int = 2024, speakers: Optional[Sequence[str]] = None
) -> Dict[str, int]:
    """Write data/{train,dev,test,test_isolated,test_long}; returns utterance counts per set."""
    data_dir = Path(data_dir)
    audio_dir = (Path(audio_dir) if audio_dir else data_dir / "local" / "audio").resolve()
    recordings = read_recordings(corpus_dir, speakers)
    pools: Dict[Tuple[str, str], List[Recording]] = {}
    for rec in sorted(recordings.values(), key=lambda r: r.name):
        pools.setdefault((rec.split, rec.speaker), []).append(rec)
    spks = sorted({r.speaker for r in recordings.values()})
    for spk in spks:
        for split in ("train", "dev", "test"):
            if (split, spk) not in pools:
                raise CorpusError(f"{Path(corpus_dir) / 'recordings'}: speaker '{spk}' has no {split} recordings")

    counts, lines = {}, []
    for set_name, n_per_spk in (
        ("train", TRAIN_UTTS_PER_SPEAKER),
        ("dev", EVAL_UTTS_PER_SPEAKER),
        ("test", EVAL_UTTS_PER_SPEAKER),
    ):
        writer = _SetWriter(set_name, data_dir, audio_dir)
        for spk in spks:
            rng = _rng(seed, set_name, spk)
            for k, group in enumerate(group_recordings(rng, pools[(set_name, spk)], n_per_spk)):
                audio, onsets = concatenate(rng, group)
                writer.add(f"{spk}-{set_name}-{k:04d}", spk, group, onsets, audio)
        lines.append(writer.close())
        counts[set_name] = len(writer.wav)

    writer = _SetWriter("test_isolated", data_dir, audio_dir)
    for spk in spks:
        for rec in pools[("test", spk)]:
            writer.add(f"{spk}-isolated-{rec.digit}-{rec.index}", spk, [rec], [0])
    lines.append(writer.close())
    counts["test_isolated"] = len(writer.wav)

    writer = _SetWriter("test_long", data_dir, audio_dir)
    for spk in spks:
        rng = _rng(seed, "test_long", spk)
        for k, seconds_range in enumerate(LONG_STREAM_SECONDS, start=1):
            audio, parts, onsets = long_stream(rng, pools[("test", spk)], seconds_range)
            writer.add(f"{spk}-long-{k}", spk, parts, onsets, audio)
    lines.append(writer.close())
    counts["test_long"] = len(writer.wav)
    print("\n".join(lines))
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = corpus_parser(__doc__, "folder holding recordings/")
    p.add_argument("--audio_dir", "--audio-dir", default=None, help="generated wavs (default <data_dir>/local/audio)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--speakers", default=None, help="comma-separated subset of speakers (default: all)")
    return run_main(
        p,
        argv,
        lambda args: prepare_fsdd(
            args.corpus_dir,
            args.data_dir,
            args.audio_dir,
            args.seed,
            args.speakers.split(",") if args.speakers else None,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
