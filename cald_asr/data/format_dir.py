"""Recipe stage 2: turn a data dir into a formatted dump dir that training reads without surprises.

Audio input (wav.scp, with or without segments): every utterance is decoded, resampled to one rate and
written as its own 16-bit PCM wav. Feature input (feats.scp): matrices are copied into one ark.
Broken or filtered utterances are dropped and listed with their reason in `<out_dir>/dropped.log`.
With `no_text`, a dir without transcripts (audio for task: layer_distillation) is formatted too: no `text`
out, and utt2spk/spk2utt map each utterance to itself when the input has none.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from cald_asr.data.audio import AudioError, load_audio, write_wav
from cald_asr.data.features import FeatureError, load_feats, write_feats
from cald_asr.data.kaldi_dir import DataDirError, c_sort_key, read_kv, utt2spk_to_spk2utt, write_kv
from cald_asr.data.progress import progress_bar
from cald_asr.data.validate import SEGMENT_OVERSHOOT_S, find_problems, validate_data_dir

INPUT_FILES = ("wav.scp", "feats.scp", "segments", "text", "utt2spk", "spk2utt")
WAV_OUTPUTS = ("wav.scp", "utt2num_samples")
FEATS_OUTPUTS = ("feats.scp", "feats.ark", "utt2num_frames", "feats_shape")


@dataclass
class FormatOptions:
    fs: int = 16000
    min_sec: float = 0.1
    max_sec: float = 30.0
    filter: bool = False
    frame_shift_ms: float = 10.0
    nj: int = 2
    # ESPnet's <train>_sp: one copy of every utterance per factor (1.0: the original); () = no perturbation
    speed_perturb_factors: Tuple[float, ...] = ()

    def __post_init__(self):
        if self.fs <= 0 or self.frame_shift_ms <= 0:
            raise ValueError(f"--fs ({self.fs}) and --frame_shift_ms ({self.frame_shift_ms}) must be positive")
        if not 0 <= self.min_sec <= self.max_sec:
            raise ValueError(f"need 0 <= --min_sec ({self.min_sec}) <= --max_sec ({self.max_sec})")
        self.speed_perturb_factors = check_speed_factors(self.speed_perturb_factors)


@dataclass
class FormatResult:
    total: int = 0
    kept: List[str] = field(default_factory=list)
    dropped: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False  # outputs were up to date

    def summary(self, in_dir, out_dir) -> str:
        if self.skipped:
            return f"format_data: {out_dir} is up to date with {in_dir} (use --force to redo)"
        causes: Dict[str, int] = {}
        for reason in self.dropped.values():
            cause = reason.split(":", 1)[0]
            causes[cause] = causes.get(cause, 0) + 1
        why = ", ".join(f"{k} {v}" for k, v in sorted(causes.items()))
        return (
            f"format_data: {in_dir} -> {out_dir}: kept {len(self.kept)} of {self.total} utterance(s) "
            f"({_duration(self.seconds)}); dropped {len(self.dropped)}"
            + (f" ({why})" if why else "")
            + (f"; see {Path(out_dir) / 'dropped.log'}" if self.dropped else "")
        )


def _duration(sec: float) -> str:
    return f"{sec:.1f} s" if sec < 3600 else f"{sec / 3600:.2f} h"


def format_data_dir(
    in_dir,
    out_dir,
    opts: FormatOptions,
    force: bool = False,
    input_type: str = "auto",
    progress: bool = True,
    no_text: bool = False,
) -> FormatResult:
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError(f"--in_dir and --out_dir are the same directory ({in_dir}); the input would be overwritten")
    stamp = {"in_dir": str(in_dir.absolute()), "input_type": input_type, **asdict(opts)}
    stamp.pop("nj")
    if not opts.speed_perturb_factors:  # only then: the stamps of dumps made before the option still match
        stamp.pop("speed_perturb_factors")
    if no_text:  # only then, so that the stamps of dumps made before the option still match
        stamp.update(no_text=True, has_text=(in_dir / "text").exists())  # a text removed since: redo
    if not force and _up_to_date(in_dir, out_dir, stamp):
        return FormatResult(skipped=True)
    texts = _check_input(in_dir, no_text)
    has_text = (in_dir / "text").exists()  # False only with no_text (else _check_input failed)
    if input_type == "auto":
        input_type = "wav" if (in_dir / "wav.scp").exists() else "feats"
    if input_type not in ("wav", "feats"):
        raise ValueError(f"input_type must be 'auto', 'wav' or 'feats', got '{input_type}'")
    if opts.speed_perturb_factors and input_type != "wav":
        raise ValueError(f"--speed_perturb_factors needs audio input (wav.scp); {in_dir} holds features (feats.scp)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ".done").unlink(missing_ok=True)

    utts = texts if has_text else _audio_utts(in_dir, input_type)
    result = FormatResult(total=len(utts))
    todo = []
    for utt in sorted(utts, key=c_sort_key):
        if utt in texts and not texts[utt].strip():
            # Dropped even without --filter: an empty transcript makes the output dir invalid.
            result.dropped[utt] = "empty text: the transcript is empty"
        else:
            todo.append(utt)
    _speed_drops(result, opts.speed_perturb_factors)
    if input_type == "wav":
        lengths = _format_wav(in_dir, out_dir, todo, opts, result, progress)
    else:
        lengths = _format_feats(in_dir, out_dir, todo, opts, result, progress)
    result.kept = sorted(lengths, key=c_sort_key)
    _write_log(out_dir / "dropped.log", result)
    if not result.kept:
        raise DataDirError(f"{in_dir}: no utterance left after formatting; see {out_dir / 'dropped.log'}")

    # Without speakers (only with no_text) each utterance is its own, as Kaldi does for unknown speakers.
    utt2spk = read_kv(in_dir / "utt2spk") if (in_dir / "utt2spk").exists() else {u: u for u in result.kept}
    texts, utt2spk = _speed_maps(texts, utt2spk, opts.speed_perturb_factors)
    keep = set(result.kept)
    if has_text:
        write_kv(out_dir / "text", {u: texts[u] for u in result.kept})
    else:
        (out_dir / "text").unlink(missing_ok=True)  # left from an earlier run on a dir with transcripts
    write_kv(out_dir / "utt2spk", {u: utt2spk[u] for u in result.kept})
    write_kv(out_dir / "spk2utt", utt2spk_to_spk2utt({u: utt2spk[u] for u in keep}))
    (out_dir / "feats_type").write_text("raw\n" if input_type == "wav" else "extracted\n", encoding="utf-8")
    for stale in FEATS_OUTPUTS if input_type == "wav" else WAV_OUTPUTS + ("segments",):
        (out_dir / stale).unlink(missing_ok=True)
    problems = validate_data_dir(out_dir, no_text=not has_text)
    if problems:  # a bug here, not in the input: refuse to mark the output done
        raise DataDirError(f"formatted dir {out_dir} is invalid:\n" + "\n".join(problems))
    (out_dir / ".done").write_text(json.dumps(stamp, sort_keys=True) + "\n", encoding="utf-8")
    return result


def _up_to_date(in_dir: Path, out_dir: Path, stamp: dict) -> bool:
    done = out_dir / ".done"
    if not done.exists():
        return False
    try:
        if json.loads(done.read_text(encoding="utf-8")) != json.loads(json.dumps(stamp)):
            return False  # same dirs, other options: the old output does not answer this call
    except json.JSONDecodeError:
        return False
    newest = max(((in_dir / n).stat().st_mtime for n in INPUT_FILES if (in_dir / n).exists()), default=0.0)
    return done.stat().st_mtime > newest


def _check_input(in_dir: Path, no_text: bool = False) -> Dict[str, str]:
    """Fail on structural problems (they need a fix in data preparation, not a silent drop); empty
    transcripts are allowed here because formatting drops and lists them. With no_text, `text` (and
    utt2spk/spk2utt) may be absent: then {} is returned."""
    if not in_dir.is_dir():
        raise DataDirError(f"{in_dir}: not a directory")
    texts = read_kv(in_dir / "text", allow_empty_value=True) if (in_dir / "text").exists() else {}
    empty = {u for u, t in texts.items() if not t.strip()}
    problems = [p for p in find_problems(in_dir, no_text=no_text) if not (p.utts and set(p.utts) <= empty)]
    if problems:
        raise DataDirError(
            f"{in_dir} is not a valid data dir (python -m cald_asr.bin.validate_data_dir "
            f"{in_dir}{' --no_text' if no_text else ''} --fix drops the bad utterances):\n"
            + "\n".join(map(str, problems))
        )
    return texts


def _audio_utts(in_dir: Path, input_type: str) -> List[str]:
    """The utterances of a (valid) dir without text: those of segments, else of wav.scp or feats.scp."""
    if input_type == "feats":
        return list(read_kv(in_dir / "feats.scp"))
    return list(read_kv(in_dir / ("segments" if (in_dir / "segments").exists() else "wav.scp")))


def _format_wav(
    in_dir: Path, out_dir: Path, utts: List[str], opts: FormatOptions, result: FormatResult, progress: bool
) -> Dict[str, int]:
    wav = read_kv(in_dir / "wav.scp")
    jobs: Dict[str, Tuple[str, list]] = {}
    if (in_dir / "segments").exists():
        segments = read_kv(in_dir / "segments")
        for utt in utts:
            rec, start, end = segments[utt].split()
            jobs.setdefault(rec, (wav[rec], []))[1].append((utt, float(start), float(end)))
    else:
        for utt in utts:
            jobs[utt] = (wav[utt], [(utt, 0.0, -1.0)])
    wav_dir = (out_dir / "data").absolute()
    wav_dir.mkdir(parents=True, exist_ok=True)
    work = partial(_format_recording, out_dir=wav_dir, opts=opts)
    items = list(jobs.values())
    lengths: Dict[str, int] = {}
    with _pool(opts.nj, len(items)) as pool:
        results = pool.imap(work, items, chunksize=8) if pool else map(work, items)
        for outcome in progress_bar(
            results, total=len(items), desc=f"format {in_dir.name}", unit="rec", disable=not progress
        ):
            for utt, n, reason in outcome:
                if reason is None:
                    lengths[utt] = n
                else:
                    result.dropped[utt] = reason
    result.seconds = sum(lengths.values()) / opts.fs
    write_kv(out_dir / "wav.scp", {u: str(wav_dir / f"{u}.wav") for u in lengths})
    write_kv(out_dir / "utt2num_samples", lengths)
    for f in wav_dir.glob("*.wav"):
        if f.stem not in lengths:  # left from an earlier run with other inputs or options
            f.unlink()
    return lengths


def _pool(nj: int, n_jobs: int):
    if nj <= 1 or n_jobs < 2:
        return _NoPool()
    # fork: workers inherit the imported modules and need nothing pickled but the job itself.
    return multiprocessing.get_context("fork").Pool(min(nj, n_jobs))


class _NoPool:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _format_recording(job, out_dir: Path, opts: FormatOptions) -> List[Tuple[str, int, Optional[str]]]:
    """Decode one recording once, cut its utterances, filter, write the kept ones. Runs in a worker."""
    spec, segs = job
    factors = opts.speed_perturb_factors
    try:
        x, fs = load_audio(spec, target_fs=opts.fs)
    except AudioError as e:
        return [(u, 0, f"broken audio: {e}") for utt, _, _ in segs for u in speed_ids(utt, factors)]
    rec_sec = len(x) / fs
    out = []
    for utt, start, end in segs:
        if end != -1 and end > rec_sec + SEGMENT_OVERSHOOT_S:
            reason = f"bad segment: ends at {end:.2f} s but the recording lasts {rec_sec:.2f} s"
            out += [(u, 0, reason) for u in speed_ids(utt, factors)]
            continue
        piece = x[int(round(start * fs)) : None if end == -1 else int(round(end * fs))]
        for u, y in _speed_copies(utt, piece, fs, factors):
            reason = _length_reason(len(y) / fs, opts)  # the perturbed length: --min_sec/--max_sec hold for it
            if reason is None and len(piece) == 0:
                reason = "empty audio: the segment holds no samples"
            if reason is None:
                write_wav(out_dir / f"{u}.wav", y, fs)
            out.append((u, len(y), reason))
    return out


def check_speed_factors(factors) -> Tuple[float, ...]:
    """--speed_perturb_factors as a tuple of distinct positive, finite floats."""
    out = tuple(float(f) for f in factors)
    for f in out:
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"--speed_perturb_factors: {f:g} is not a positive speed factor")
    twice = sorted({f for f in out if out.count(f) > 1})
    if twice:
        raise ValueError(f"--speed_perturb_factors lists {', '.join(f'{f:g}' for f in twice)} more than once")
    return out


def speed_prefix(factor: float) -> str:
    """Kaldi's and ESPnet's prefix of a speed-perturbed utterance or speaker id (utils/perturb_data_dir_speed.sh:
    "sp<factor>-", the factor in its shortest form, e.g. sp0.9-); the original (1.0) keeps its id."""
    return "" if factor == 1.0 else f"sp{factor:g}-"


def speed_ids(utt: str, factors: Tuple[float, ...]) -> List[str]:
    """The output ids of input utterance `utt`: itself without perturbation, else one per factor."""
    return [speed_prefix(f) + utt for f in factors] if factors else [utt]


def _speed_copies(utt: str, x, fs: int, factors: Tuple[float, ...]):
    """(output id, waveform) of every copy of one utterance (itself alone without perturbation)."""
    if not factors:
        yield utt, x
        return
    from cald_asr.data.augment import speed_perturb  # imported by _speed_drops before the workers fork

    for f in factors:
        yield speed_prefix(f) + utt, x if len(x) == 0 else speed_perturb(x, f, fs)


def _speed_drops(result: FormatResult, factors: Tuple[float, ...]) -> None:
    """Before the audio is read: what was dropped (empty transcripts) and the total are counted per copy; the
    perturbation's module is imported here, once, so that the forked workers need not (it imports torch), and
    only when a set is perturbed."""
    if factors:
        import cald_asr.data.augment  # noqa: F401

        result.dropped = {u: why for utt, why in result.dropped.items() for u in speed_ids(utt, factors)}
        result.total *= len(factors)


def _speed_maps(texts: Dict[str, str], utt2spk: Dict[str, str], factors: Tuple[float, ...]):
    """texts and utt2spk with the perturbed copies added: same transcript, speaker prefixed like the utterance
    (each perturbed speaker is a speaker of its own, as in Kaldi)."""
    if not factors:
        return texts, utt2spk
    texts = {**texts, **{speed_prefix(f) + u: t for u, t in texts.items() for f in factors}}
    utt2spk = {**utt2spk, **{speed_prefix(f) + u: speed_prefix(f) + s for u, s in utt2spk.items() for f in factors}}
    return texts, utt2spk


def _length_reason(sec: float, opts: FormatOptions) -> Optional[str]:
    if not opts.filter:
        return None
    if sec < opts.min_sec:
        return f"too short: {sec:.3f} s < --min_sec {opts.min_sec}"
    if sec > opts.max_sec:
        return f"too long: {sec:.3f} s > --max_sec {opts.max_sec}"
    return None


def _format_feats(
    in_dir: Path, out_dir: Path, utts: List[str], opts: FormatOptions, result: FormatResult, progress: bool
) -> Dict[str, int]:
    feats = read_kv(in_dir / "feats.scp")
    shift_s = opts.frame_shift_ms / 1000.0
    lengths: Dict[str, int] = {}
    shapes: Dict[str, str] = {}

    def kept_matrices():
        for utt in progress_bar(utts, desc=f"format {in_dir.name}", unit="utt", disable=not progress):
            try:
                mat = load_feats(utt, feats[utt])
            except FeatureError as e:
                result.dropped[utt] = f"broken features: {e}"
                continue
            reason = _length_reason(mat.shape[0] * shift_s, opts)
            if reason is not None:
                result.dropped[utt] = f"{reason} ({mat.shape[0]} frames at {opts.frame_shift_ms} ms)"
                continue
            lengths[utt] = mat.shape[0]
            shapes[utt] = f"{mat.shape[0]},{mat.shape[1]}"
            yield utt, mat

    write_feats(out_dir / "feats.ark", out_dir / "feats.scp", kept_matrices())
    result.seconds = sum(lengths.values()) * shift_s
    write_kv(out_dir / "utt2num_frames", lengths)
    write_kv(out_dir / "feats_shape", shapes)
    return lengths


def _write_log(path: Path, result: FormatResult) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for utt in sorted(result.dropped, key=c_sort_key):
            f.write(f"{utt} {result.dropped[utt]}\n")
    os.replace(tmp, path)
