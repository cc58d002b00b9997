"""Outputs of a decoding job that survive a crash and belong to one model: the journal, the fingerprint,
the completion record and the job's exit protocol (shared by asr_inference and cls_inference).

    <output_dir>/fingerprint     JSON: sha1 of the model files and of every option that changes results
    <output_dir>/journal.jsonl   one JSON record per utterance, appended and flushed as it is decoded
    <output_dir>/status          written last, only by a job that ran to its end: keys, decoded, failed

A job opening an output dir that holds results of another fingerprint (another model, weights or
inference config; or results without one, from an older version) removes them before decoding. With the
same fingerprint it keeps every journal record whose input is unchanged and decodes only the rest, so a
rerun after a crash or a kill continues where the job stopped. Records of failed utterances are kept in
the journal but are not "done": a rerun retries them (the input may have been fixed since).

A kill can tear the last line; reading ignores it and reopening for append cuts it off, so the next
record starts on a fresh line. Exit status of a job: 0 all done, 1 some utterances failed (listed), 2
nothing could be attempted, 3 crashed or terminated (SIGTERM, SIGINT), after flushing the journal. A
scheduler may not forward exit codes, so recipes read `status` instead: no status means the job crashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Type

from cald_asr.data.kaldi_dir import write_kv

JOURNAL, FINGERPRINT, STATUS = "journal.jsonl", "fingerprint", "status"
CRASHED = 3
Say = Callable[[str], None]  # where a message goes: a logger's method, or print to stderr


def say_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM arrived (a scheduler's time limit or scancel). A BaseException, like KeyboardInterrupt,
    so that the `except Exception` around a single utterance cannot take it for a broken input."""


def file_sha1(path: os.PathLike | str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_fingerprint(files: Mapping[str, os.PathLike | str], options: Mapping[str, object]) -> Dict[str, object]:
    """{"sha1": ..., "files": {name: sha1 of its bytes}, "options": {...}}. Paths do not count (a moved
    experiment dir keeps its results); the bytes and the options do."""
    digests = {name: file_sha1(path) for name, path in files.items()}
    opts = json.loads(json.dumps(dict(options), sort_keys=True, default=str))
    whole = hashlib.sha1(json.dumps({"files": digests, "options": opts}, sort_keys=True).encode()).hexdigest()
    return {"sha1": whole, "files": digests, "options": opts}


def read_fingerprint(out_dir: Path) -> Optional[Dict[str, object]]:
    try:
        fp = json.loads((out_dir / FINGERPRINT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return fp if isinstance(fp, dict) and isinstance(fp.get("sha1"), str) else None


def describe_change(old: Optional[Mapping], new: Mapping) -> str:
    """What differs between two fingerprints, in words: 'model.safetensors differs; beam_size 1 -> 4'."""
    if old is None:
        return "no fingerprint (written by an older version, or by hand)"
    parts = [
        f"{name} differs"
        for name in sorted(set(old.get("files", {})) | set(new["files"]))
        if old.get("files", {}).get(name) != new["files"].get(name)
    ]
    old_opts = old.get("options", {})
    parts += [
        f"{k} {old_opts.get(k)!r} -> {new['options'].get(k)!r}"
        for k in sorted(set(old_opts) | set(new["options"]))
        if old_opts.get(k) != new["options"].get(k)
    ]
    return "; ".join(parts) or "fingerprint differs"


def open_output_dir(
    out_dir: Path, fingerprint: Mapping, results: Sequence[str], prog: str, warn: Say = say_stderr
) -> None:
    """Make out_dir hold results of `fingerprint` only: results of another one (the journal and the
    listed result files or dirs) are removed, with a warning saying why. Writes the fingerprint."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STATUS).unlink(missing_ok=True)
    old = read_fingerprint(out_dir)
    if old is not None and old["sha1"] == fingerprint["sha1"]:
        return
    present = [name for name in (JOURNAL, *results) if (out_dir / name).exists()]
    if present:
        warn(
            f"{prog}: {out_dir} holds results of another model or inference config "
            f"({describe_change(old, fingerprint)}): removing {', '.join(present)}; decoding from scratch"
        )
    # the old fingerprint goes first: a job reading this dir concurrently never pairs it with new records
    (out_dir / FINGERPRINT).unlink(missing_ok=True)
    for name in present:
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    tmp = out_dir / f".{FINGERPRINT}.tmp"
    tmp.write_text(json.dumps(fingerprint, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / FINGERPRINT)


def read_journal(path: Path, warn: Optional[Say] = None) -> Dict[str, dict]:
    """The last record of every key. A torn last line (a kill mid-write) is ignored silently; a bad line
    elsewhere is ignored with a warning naming file:line (its utterance is simply decoded again)."""
    records: Dict[str, dict] = {}
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return records
    lines = data.split(b"\n")
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                raise ValueError("not a record with a key")
        except ValueError:
            if line_no < len(lines) and warn is not None:  # the last piece has no newline: torn, not bad
                warn(f"{path}:{line_no}: not a journal record, ignored (its utterance is decoded again)")
            continue
        records[rec["key"]] = rec
    return records


class Journal:
    """Append-only JSON lines, flushed per record and fsync'd on close."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_file():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # cut a torn last line, so the next record starts clean
                with open(path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        self._f = open(path, "a", encoding="utf-8")

    def append(self, record: Mapping[str, object]) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reusable(records: Mapping[str, dict], keys: Iterable[str], inputs: Mapping[str, str]) -> Dict[str, dict]:
    """Records that count as done: decoded (not failed) from the same input entry as now."""
    return {
        k: records[k]
        for k in keys
        if k in records and "failed" not in records[k] and records[k].get("input") == inputs.get(k)
    }


def resume_records(
    dirs: Sequence[os.PathLike | str],
    fingerprint: Mapping,
    keys: Iterable[str],
    inputs: Mapping[str, str],
    prog: str,
    say: Say = say_stderr,
) -> Dict[str, dict]:
    """Done records of `keys` in other output dirs with the same fingerprint (e.g. the jobs of an earlier
    run with another --nj); dirs of another fingerprint are ignored, with a note."""
    keys = list(keys)
    found: Dict[str, dict] = {}
    for d in map(Path, dirs):
        fp = read_fingerprint(d)
        if fp is None or fp["sha1"] != fingerprint["sha1"]:
            if (d / JOURNAL).is_file():
                say(f"{prog}: not resuming from {d}: {describe_change(fp, fingerprint)}")
            continue
        for k, rec in reusable(read_journal(d / JOURNAL, say), keys, inputs).items():
            found.setdefault(k, rec)
    return found


def write_status(out_dir: Path, counts: Mapping[str, object]) -> None:
    """The completion record: written last, so its presence says the job ran to its end."""
    write_kv(out_dir / STATUS, counts, sort=False)


def decoded_in_journal(out_dir: Optional[os.PathLike | str]) -> int:
    if out_dir is None:
        return 0
    return sum("failed" not in r for r in read_journal(Path(out_dir) / JOURNAL).values())


def run_job(
    prog: str,
    body: Callable[[], int],
    out_dir: Optional[os.PathLike | str],
    setup_errors: Tuple[Type[BaseException], ...],
) -> int:
    """Run a decoding job with the exit protocol above: a setup error prints its message (2); a crash, a
    SIGTERM or Ctrl-C prints what happened and what the journal kept (3)."""

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return body()
    except setup_errors as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except (Exception, Terminated, KeyboardInterrupt) as e:
        if isinstance(e, Exception):
            traceback.print_exc()
            what = f"crashed ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        else:
            what = "terminated by SIGTERM" if isinstance(e, Terminated) else "interrupted (SIGINT)"
        kept = (
            f"{Path(out_dir) / JOURNAL} keeps the {decoded_in_journal(out_dir)} result(s) done so far"
            if out_dir is not None
            else "nothing was kept"
        )
        print(f"{prog}: error: {what}; {kept}: run the same command again to do the rest", file=sys.stderr)
        return CRASHED
    finally:
        signal.signal(signal.SIGTERM, previous)
