"""Read and write Kaldi-style key-value files (wav.scp, text, utt2spk, ...).

Every reader error names the file and the 1-based line, because users fix these files by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, Mapping, Tuple


class DataDirError(ValueError):
    """A problem in a Kaldi data directory, already formatted as 'file:line: message'."""


def c_sort_key(key: str) -> bytes:
    # Kaldi requires LC_ALL=C order, i.e. byte order of the UTF-8 encoding.
    return key.encode("utf-8")


def iter_kv_lines(path: os.PathLike | str, allow_empty_value: bool = False) -> Iterable[Tuple[int, str, str]]:
    """Yield (line_no, key, value) for each non-blank line; value may be '' only if allowed."""
    path = Path(path)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataDirError(f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataDirError(f"{path}:{line_no}: key '{key}' has no value")
            yield line_no, key, value


def read_kv(path: os.PathLike | str, allow_empty_value: bool = False) -> Dict[str, str]:
    """Read a key-value file into an insertion-ordered dict; duplicate keys are an error."""
    out: Dict[str, str] = {}
    first_seen: Dict[str, int] = {}
    for line_no, key, value in iter_kv_lines(path, allow_empty_value):
        if key in out:
            raise DataDirError(f"{path}:{line_no}: duplicate key '{key}' (first on line {first_seen[key]})")
        out[key] = value
        first_seen[key] = line_no
    return out


def write_kv(path: os.PathLike | str, mapping: Mapping[str, object], sort: bool = True) -> None:
    """Write 'key value' lines, C-locale sorted by default, atomically (temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(mapping, key=c_sort_key) if sort else list(mapping)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for k in keys:
            if any(c.isspace() for c in k):
                raise ValueError(f"{path}: key '{k}' contains white space")
            f.write(f"{k} {mapping[k]}\n")
    os.replace(tmp, path)


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> Dict[str, str]:
    spk2utts: Dict[str, list] = {}
    for utt in sorted(utt2spk, key=c_sort_key):
        spk2utts.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in spk2utts.items()}
