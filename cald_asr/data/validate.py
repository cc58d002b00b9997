"""Validate a Kaldi data directory and fix it by dropping bad utterances consistently from every file.

A data dir holds `text`, `utt2spk`, `spk2utt` and `wav.scp` or `feats.scp`; optionally `segments` (then
`wav.scp` is keyed by recording), `utt2num_samples`, `utt2num_frames`, `feats_shape`, `utt2dur`.
With `no_text` (audio without transcripts, as for task: layer_distillation) `text` is not required, nor are
`utt2spk` and `spk2utt` (each utterance is then its own speaker, as Kaldi does for unknown speakers); the
ones that are there are checked as always.
Every problem is reported as 'file:line: message' (or 'file: message' for whole-file problems).
Warnings do not make a dir invalid: utterance ids that do not begin with their speaker id (Kaldi's rule, so
that sorting by utterance keeps each speaker's utterances together) are counted and the first ones named.
With `check_audio`, every audio entry is decoded once (pipe commands run, under their time limit) and every
feature matrix read, so that broken, non-finite or odd-rate audio and odd-dimension features are found.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set

from cald_asr.data.audio import AudioError, scan_audio
from cald_asr.data.features import FeatureError, load_feats
from cald_asr.data.kaldi_dir import DataDirError, utt2spk_to_spk2utt, write_kv
from cald_asr.data.kv_scan import Problem, ScannedFile, scan_kv

REQUIRED = ("text", "utt2spk", "spk2utt")
SPEAKER_FILES = ("utt2spk", "spk2utt")
OPTIONAL_UTT_FILES = ("utt2num_samples", "utt2num_frames", "feats_shape", "utt2dur")
# Kaldi's extract-segments tolerates segments that end this far past the recording (rounding in corpora).
SEGMENT_OVERSHOOT_S = 0.5
# Ids become file names (stage 2 writes dump/<set>/data/<utt>.wav): these would lead out of that directory.
UNSAFE_ID_PARTS = ("/", "..")
# How many offenders a warning names before it only counts them.
WARN_EXAMPLES = 3

EMPTY_MESSAGES = {
    "text": "empty transcript for utterance '{key}'",
    "utt2spk": "utterance '{key}' has no speaker",
    "spk2utt": "speaker '{key}' has no utterances",
    "wav.scp": "'{key}' has no audio path or command",
    "feats.scp": "utterance '{key}' has no feature specifier",
    "segments": "segment '{key}' has no recording and times",
}


@dataclass
class Inspection:
    root: Path
    problems: List[Problem] = field(default_factory=list)
    files: Dict[str, ScannedFile] = field(default_factory=dict)
    segments: Dict[str, tuple] = field(default_factory=dict)  # utt -> (rec, start, end)
    rec2utts: Dict[str, List[str]] = field(default_factory=dict)
    no_text: bool = False  # text (and with it utt2spk/spk2utt) optional
    warnings: List[str] = field(default_factory=list)  # 'file: message'; the dir is valid all the same

    def add(self, name: str, key: Optional[str], message: str, utts=(), repair: str = "") -> None:
        line = self.files[name].line_of(key) if key is not None and name in self.files else None
        self.problems.append(Problem(str(self.root / name), line, message, tuple(utts), repair))


def validate_data_dir(
    data_dir,
    check_audio: bool = False,
    fs: Optional[int] = None,
    pipe_timeout: Optional[float] = None,
    no_text: bool = False,
) -> List[str]:
    """Return every problem found, as 'file:line: message' strings; [] means the dir is valid.
    With check_audio: `fs` is the sample rate every recording must have (None: the most common one);
    `pipe_timeout` limits each pipe command in seconds (None: $CALD_ASR_PIPE_TIMEOUT, else 300).
    With no_text: `text`, `utt2spk` and `spk2utt` may be absent (utt2spk and spk2utt only together)."""
    return [str(p) for p in find_problems(data_dir, check_audio, fs, pipe_timeout, no_text)]


def find_problems(
    data_dir,
    check_audio: bool = False,
    fs: Optional[int] = None,
    pipe_timeout: Optional[float] = None,
    no_text: bool = False,
) -> List[Problem]:
    """The problems as objects that also name the utterances each one implicates."""
    return _inspect(Path(data_dir), check_audio, fs, pipe_timeout, no_text).problems


def _inspect(
    root: Path,
    check_audio: bool,
    fs: Optional[int] = None,
    pipe_timeout: Optional[float] = None,
    no_text: bool = False,
) -> Inspection:
    ins = Inspection(root, no_text=no_text)
    if not root.is_dir():
        ins.problems.append(Problem(str(root), None, "not a directory", repair="fatal"))
        return ins
    names = [n for n in REQUIRED + ("wav.scp", "feats.scp", "segments") + OPTIONAL_UTT_FILES if (root / n).exists()]
    speakers = [n for n in SPEAKER_FILES if n in names]
    for n in REQUIRED:
        if n in names or (no_text and (n == "text" or not speakers)):
            continue
        # With no_text a lone utt2spk or spk2utt is an error still: the speakers it gives would be half-known.
        why = f" ({speakers[0]} is there; they come together)" if no_text else ""
        ins.problems.append(Problem(str(root / n), None, "missing file" + why, repair="fatal"))
    if "wav.scp" not in names and "feats.scp" not in names:
        ins.problems.append(Problem(str(root), None, "neither wav.scp nor feats.scp exists", repair="fatal"))
    if "segments" in names and "wav.scp" not in names:
        ins.problems.append(
            Problem(str(root / "segments"), None, "segments given but wav.scp is missing", repair="fatal")
        )
    for n in names:
        found: List[Problem] = []
        ins.files[n] = scan_kv(
            root / n, found, EMPTY_MESSAGES.get(n, "key '{key}' has no value"), key_is_utt=n != "spk2utt"
        )
        for p in found:
            if n == "spk2utt" and not p.repair:
                p.repair = "spk2utt"
        ins.problems.extend(found)

    _check_ids(ins)
    _check_values(ins)
    _check_segments(ins)
    _check_utterance_sets(ins)
    _check_speakers(ins)
    _check_speaker_prefix(ins)
    if check_audio:
        _check_media(ins, fs, pipe_timeout)
    _map_recordings_to_utts(ins)
    return ins


def _good(ins: Inspection, name: str):
    f = ins.files.get(name)
    if f is None:
        return []
    return [(k, v) for k, v in f.entries.items() if k not in f.bad]


def _unsafe_id(key: str) -> bool:
    return any(part in key for part in UNSAFE_ID_PARTS)


def _check_ids(ins: Inspection) -> None:
    """Utterance, recording and speaker ids must be usable as file names: no '/' and no '..'."""
    why = "contains '/' or '..' (ids become file names such as dump/<set>/data/<id>.wav and must stay there)"
    segmented = "segments" in ins.files
    for name, f in ins.files.items():
        kind = "speaker" if name == "spk2utt" else "recording" if name == "wav.scp" and segmented else "utterance"
        for key in f.entries:
            if _unsafe_id(key):
                if name == "spk2utt":  # utt2spk reports the utterances to drop; spk2utt is regenerated from it
                    ins.add(name, key, f"speaker id '{key}' {why}", repair="spk2utt")
                else:
                    ins.add(name, key, f"{kind} id '{key}' {why}", (key,))
    for utt, spk in _good(ins, "utt2spk"):
        if _unsafe_id(spk) and not _unsafe_id(utt):
            ins.add("utt2spk", utt, f"utterance '{utt}': speaker id '{spk}' {why}", (utt,))


def _check_values(ins: Inspection) -> None:
    for utt, spk in _good(ins, "utt2spk"):
        if len(spk.split()) != 1:
            ins.add("utt2spk", utt, f"utterance '{utt}': speaker id '{spk}' must be one field", (utt,))
    for name in ("utt2num_samples", "utt2num_frames"):
        for utt, v in _good(ins, name):
            if not v.isdigit() or int(v) <= 0:
                ins.add(name, utt, f"utterance '{utt}': '{v}' is not a positive integer", (utt,))
    for utt, v in _good(ins, "feats_shape"):
        dims = v.split(",")
        if len(dims) != 2 or not all(d.isdigit() and int(d) > 0 for d in dims):
            ins.add("feats_shape", utt, f"utterance '{utt}': shape '{v}' is not 'frames,dim'", (utt,))
    for utt, v in _good(ins, "utt2dur"):
        if _float(v) is None or _float(v) <= 0:
            ins.add("utt2dur", utt, f"utterance '{utt}': '{v}' is not a positive duration", (utt,))


def _float(s: str) -> Optional[float]:
    try:
        return float(s)
    except ValueError:
        return None


def _check_segments(ins: Inspection) -> None:
    wav = ins.files.get("wav.scp")
    for utt, v in _good(ins, "segments"):
        fields = v.split()
        if len(fields) != 3 or _float(fields[1]) is None or _float(fields[2]) is None:
            ins.add("segments", utt, f"segment '{utt}': expected '<rec-id> <start-s> <end-s>', got '{v}'", (utt,))
            continue
        rec, start, end = fields[0], float(fields[1]), float(fields[2])
        if start < 0 or (end <= start and end != -1):
            ins.add("segments", utt, f"segment '{utt}': invalid times start={start} end={end}", (utt,))
            continue
        if wav is not None and rec not in wav.entries:
            ins.add("segments", utt, f"segment '{utt}': recording '{rec}' is not in wav.scp", (utt,))
            continue
        ins.segments[utt] = (rec, start, end)
        ins.rec2utts.setdefault(rec, []).append(utt)


def _check_utterance_sets(ins: Inspection) -> None:
    """Every utterance in text must be in the audio/feature list and in utt2spk, and vice versa.
    With no_text and no text, the first of utt2spk, segments (else wav.scp) and feats.scp is the reference."""
    audio = "segments" if "segments" in ins.files else "wav.scp"  # with segments, wav.scp lists recordings
    refs = ("text", "utt2spk") + ((audio, "feats.scp") if ins.no_text else ())
    ref_name = next((n for n in refs if n in ins.files), None)
    if ref_name is None:
        return
    ref = ins.files[ref_name].entries
    others: Dict[str, Set[str]] = {}
    for n in (audio, "feats.scp", "utt2spk") + OPTIONAL_UTT_FILES:
        if n in ins.files and n != ref_name:
            others[n] = set(ins.files[n].entries)
    for name, keys in others.items():
        for utt in ref:
            if utt not in keys:
                ins.add(ref_name, utt, f"utterance '{utt}' has no entry in {name}", (utt,))
        for utt in ins.files[name].entries:
            if utt not in ref:
                ins.add(name, utt, f"utterance '{utt}' is not in {ref_name}", (utt,))


def _check_speakers(ins: Inspection) -> None:
    if "utt2spk" not in ins.files or "spk2utt" not in ins.files:
        return
    utt2spk = ins.files["utt2spk"].entries
    seen: Dict[str, str] = {}
    for spk, utts in _good(ins, "spk2utt"):
        for utt in utts.split():
            if utt in seen:
                ins.add(
                    "spk2utt",
                    spk,
                    f"utterance '{utt}' listed again (already under speaker '{seen[utt]}')",
                    repair="spk2utt",
                )
            elif utt not in utt2spk:
                ins.add("spk2utt", spk, f"utterance '{utt}' of speaker '{spk}' is not in utt2spk", repair="spk2utt")
            elif utt2spk[utt] != spk:
                ins.add(
                    "spk2utt",
                    spk,
                    f"utterance '{utt}' is listed under speaker '{spk}' but utt2spk gives '{utt2spk[utt]}'",
                    repair="spk2utt",
                )
            seen.setdefault(utt, spk)
    for utt, spk in _good(ins, "utt2spk"):
        if utt not in seen:
            ins.add("utt2spk", utt, f"utterance '{utt}' (speaker '{spk}') is missing from spk2utt", repair="spk2utt")


def _check_speaker_prefix(ins: Inspection) -> None:
    """Kaldi's rule that an utterance id begins with its speaker id: then sorting by utterance (every file is
    sorted so) also groups speakers, which tools that split by speaker (split_scp.sh --utt2spk, spk2utt readers)
    assume. Breaking it loses nothing here, so it is a warning."""
    pairs = _good(ins, "utt2spk")
    bad = [(utt, spk) for utt, spk in pairs if not utt.startswith(spk)]
    if not bad:
        return
    f = ins.files["utt2spk"]
    examples = ", ".join(f"line {f.line_of(u)} '{u}' (speaker '{s}')" for u, s in bad[:WARN_EXAMPLES])
    more = f" and {len(bad) - WARN_EXAMPLES} more" if len(bad) > WARN_EXAMPLES else ""
    ins.warnings.append(
        f"{ins.root / 'utt2spk'}: {len(bad)} of {len(pairs)} utterance id(s) do not begin with their speaker id: "
        f"{examples}{more}; sorted by utterance, a speaker's utterances are then not together (Kaldi's rule: "
        "name them <speaker>-<id>)"
    )


def _check_media(ins: Inspection, fs: Optional[int], pipe_timeout: Optional[float]) -> None:
    """Decode every audio entry (running pipes) and read every feature matrix, each once."""
    rates: Dict[str, int] = {}
    for key, spec in _good(ins, "wav.scp"):
        try:
            rate, frames = scan_audio(spec, pipe_timeout)
        except AudioError as e:
            ins.add("wav.scp", key, f"'{key}': {e}", (key,))
            continue
        rates[key] = rate
        if key in ins.rec2utts:
            _check_segment_ends(ins, key, frames / rate)
    expected = fs if fs is not None else _majority(rates)
    why = "--fs" if fs is not None else f"the rate of {_count(rates, expected)} of {len(rates)} wav.scp entries"
    for key, rate in rates.items():
        if rate != expected:
            ins.add("wav.scp", key, f"'{key}': sample rate {rate} Hz, expected {expected} Hz ({why})", (key,))
    dims: Dict[str, int] = {}
    specs = dict(_good(ins, "feats.scp"))
    for utt, spec in specs.items():
        try:
            dims[utt] = int(load_feats(utt, spec).shape[1])
        except FeatureError as e:
            ins.add("feats.scp", utt, str(e), (utt,))
    expected = _majority(dims)
    for utt, dim in dims.items():
        if dim != expected:
            ins.add(
                "feats.scp",
                utt,
                f"utterance '{utt}': features '{specs[utt]}' have dimension {dim}, expected "
                f"{expected} (the dimension of {_count(dims, expected)} of {len(dims)} "
                "matrices)",
                (utt,),
            )


def _majority(values: Dict[str, int]) -> Optional[int]:
    """The most common value; a tie goes to the one met first in the file."""
    return Counter(values.values()).most_common(1)[0][0] if values else None


def _count(values: Dict[str, int], v: Optional[int]) -> int:
    return sum(1 for x in values.values() if x == v)


def _check_segment_ends(ins: Inspection, rec: str, dur: float) -> None:
    for utt in ins.rec2utts[rec]:
        end = ins.segments[utt][2]
        if end > dur + SEGMENT_OVERSHOOT_S:
            ins.add(
                "segments", utt, f"segment '{utt}' ends at {end:.2f} s but recording '{rec}' lasts {dur:.2f} s", (utt,)
            )


def _map_recordings_to_utts(ins: Inspection) -> None:
    """With segments, wav.scp problems name recordings; dropping means dropping their utterances."""
    if "segments" not in ins.files:
        return
    wav_path = str(ins.root / "wav.scp")
    for p in ins.problems:
        if p.path == wav_path and p.utts:
            p.utts = tuple(u for rec in p.utts for u in ins.rec2utts.get(rec, []))


def inspect_data_dir(
    data_dir,
    check_audio: bool = False,
    fs: Optional[int] = None,
    pipe_timeout: Optional[float] = None,
    no_text: bool = False,
) -> Inspection:
    """One pass over the dir (each audio entry decoded once with check_audio): `.problems`, and what
    fix_inspected needs to drop them without looking at the audio again."""
    return _inspect(Path(data_dir), check_audio, fs, pipe_timeout, no_text)


def fix_data_dir(
    data_dir,
    log_path,
    check_audio: bool = False,
    fs: Optional[int] = None,
    pipe_timeout: Optional[float] = None,
    no_text: bool = False,
) -> Dict[str, str]:
    """Drop every utterance implicated in a problem from all files, re-sort them, regenerate spk2utt, and
    write `log_path` listing each dropped utterance with its reason. Originals go to `<data_dir>/.backup/`.
    Returns {utt: reason}. Raises DataDirError if a required file is missing or nothing would be left.
    `check_audio`, `fs`, `pipe_timeout` and `no_text` as for validate_data_dir."""
    return fix_inspected(inspect_data_dir(data_dir, check_audio, fs, pipe_timeout, no_text), log_path)


def fix_inspected(ins: Inspection, log_path) -> Dict[str, str]:
    """fix_data_dir on a dir already inspected (and not changed since)."""
    root = ins.root
    fatal = [str(p) for p in ins.problems if p.repair == "fatal"]
    if fatal:
        raise DataDirError("cannot fix " + str(root) + ":\n" + "\n".join(fatal))
    dropped: Dict[str, str] = {}
    for p in ins.problems:
        for utt in p.utts:
            dropped.setdefault(utt, str(p))
    repairs = sorted({str(p) for p in ins.problems if p.repair in ("resort", "spk2utt")})

    f = ins.files
    audio_keys = set(f["segments"].entries) if "segments" in f else set(f.get("wav.scp", f.get("feats.scp")).entries)
    kept = audio_keys - set(dropped)
    for name in ("text", "utt2spk"):  # absent only with no_text (else the missing file was fatal above)
        if name in f:
            kept &= set(f[name].entries)
    if "feats.scp" in f:
        kept &= set(f["feats.scp"].entries)
    for name in OPTIONAL_UTT_FILES:
        if name in f:
            kept &= set(f[name].entries)
    all_utts = set().union(
        *(set(f[n].entries) for n in f if n not in ("spk2utt", "wav.scp") or (n == "wav.scp" and "segments" not in f))
    )
    for utt in all_utts - kept:
        dropped.setdefault(utt, "not present in every file")

    _write_log(Path(log_path), root, len(kept), dropped, repairs)
    if not kept:
        raise DataDirError(f"fixing {root} would drop every utterance; left unchanged (see {log_path})")

    backup = root / ".backup"
    backup.mkdir(exist_ok=True)
    for name in f:
        shutil.copy2(root / name, backup / name)
    keep = lambda name: {k: v for k, v in f[name].entries.items() if k in kept}  # noqa: E731
    for name in ("text", "utt2spk", "feats.scp", "segments") + OPTIONAL_UTT_FILES:
        if name in f:
            write_kv(root / name, keep(name))
    if "utt2spk" in f:
        write_kv(root / "spk2utt", utt2spk_to_spk2utt(keep("utt2spk")))
    if "wav.scp" in f:
        recs = {ins.segments[u][0] for u in kept} if "segments" in f else kept
        write_kv(root / "wav.scp", {k: v for k, v in f["wav.scp"].entries.items() if k in recs})
    return dropped


def _write_log(path: Path, root: Path, n_kept: int, dropped: Dict[str, str], repairs: List[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"# fix_data_dir {root}: kept {n_kept} utterance(s), dropped {len(dropped)}\n")
        for utt in sorted(dropped, key=lambda u: u.encode("utf-8")):
            out.write(f"{utt} {dropped[utt]}\n")
        for r in repairs:
            out.write(f"# repaired (nothing dropped): {r}\n")
