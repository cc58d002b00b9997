"""Tolerant reading of Kaldi key-value files for validation: collect every problem instead of stopping.

`kaldi_dir.read_kv` raises on the first bad line, which is right for consumers; a validator has to go on and
report all of them, and `fix_data_dir` needs to know which utterances each problem implicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from cald_asr.data.kaldi_dir import c_sort_key


@dataclass
class Problem:
    path: str
    line: Optional[int]
    message: str
    # Utterances (or, for wav.scp with segments, recordings already mapped to utterances) to drop to fix it.
    utts: Tuple[str, ...] = ()
    # How else to fix it: 'resort' (rewrite sorted), 'spk2utt' (regenerate it from utt2spk), or 'fatal'
    # (a missing file or directory: nothing to drop can fix that).
    repair: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass
class ScannedFile:
    path: str
    entries: Dict[str, str] = field(default_factory=dict)  # first occurrence of every well-formed key
    lines: Dict[str, int] = field(default_factory=dict)  # key -> line of that first occurrence
    # Keys whose line was already reported (bad bytes, empty value): kept in `entries` with whatever value
    # could be read so that other files do not also report them as missing, but their values are not checked.
    bad: set = field(default_factory=set)

    def line_of(self, key: str) -> Optional[int]:
        return self.lines.get(key)


def scan_kv(
    path: Path, problems: List[Problem], empty_message: Optional[str] = None, key_is_utt: bool = True
) -> ScannedFile:
    """Read `path` line by line; append a Problem for each invalid UTF-8 line, empty value, duplicate key
    and out-of-order key. `empty_message` (with '{key}') turns empty values into problems; None allows them.
    """
    out = ScannedFile(str(path))
    prev_key: Optional[str] = None
    prev_line = 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                key = _decodable_key(raw)
                who = f" (key '{key}')" if key else ""
                problems.append(
                    Problem(
                        str(path),
                        line_no,
                        f"not valid UTF-8{who}: {e.reason} at byte {e.start}",
                        (key,) if key and key_is_utt else (),
                    )
                )
                if key and key not in out.entries:
                    out.entries[key], out.lines[key] = "", line_no
                    out.bad.add(key)
                continue
            parts = line.strip().split(maxsplit=1)
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if key in out.entries:
                problems.append(
                    Problem(
                        str(path),
                        line_no,
                        f"duplicate key '{key}' (first on line {out.lines[key]})",
                        (key,) if key_is_utt else (),
                    )
                )
                continue
            if prev_key is not None and c_sort_key(key) < c_sort_key(prev_key):
                problems.append(
                    Problem(
                        str(path),
                        line_no,
                        f"not sorted (C locale): '{key}' comes after '{prev_key}' on line {prev_line}",
                        repair="resort",
                    )
                )
            prev_key, prev_line = key, line_no
            if not value and empty_message is not None:
                problems.append(
                    Problem(str(path), line_no, empty_message.format(key=key), (key,) if key_is_utt else ())
                )
                out.bad.add(key)
            out.entries[key] = value
            out.lines[key] = line_no
    return out


def _decodable_key(raw: bytes) -> str:
    parts = raw.split(maxsplit=1)
    if not parts:
        return ""
    try:
        return parts[0].decode("utf-8")
    except UnicodeDecodeError:
        return ""
