"""Reader for CTranslate2 ``model.bin`` files (binary format version 6).

Layout (all integers little-endian): u32 version, string spec name, u32 revision, u32 variable count;
per variable: string name, u8 rank, rank x u32 dims, u8 dtype code, u32 byte count, raw data;
then u32 alias count and (alias, target) string pairs.  A "string" is a u16 length that counts a
trailing NUL, followed by that many bytes.

We read the file ourselves rather than through ``ctranslate2`` so that training code never needs the
inference runtime, and so the weights come back as plain numpy arrays we can load into torch modules.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

SUPPORTED_VERSION = 6

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).  bfloat16 has no numpy dtype: it is
# read as uint16 and widened to float32 by placing the bits in the upper half of a float32.
_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}

PathLike = Union[str, os.PathLike]


class CT2FormatError(ValueError):
    """A model.bin that is truncated, corrupt, or of an unsupported version."""


class _Cursor:
    def __init__(self, buf: memoryview, source: str):
        self.buf = buf
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> CT2FormatError:
        return CT2FormatError(f"{self.source}: {what} (at byte offset {self.pos} of {len(self.buf)})")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"truncated or corrupt file: needed {n} bytes for {what}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size, what))

    def string(self, what: str) -> str:
        (length,) = self.unpack("<H", f"length of {what}")
        raw = bytes(self.take(length, what))
        if length == 0 or raw[-1] != 0:
            raise self.fail(f"corrupt file: {what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"corrupt file: {what} is not valid UTF-8 ({exc})") from None


def _load_bytes(path: Union[PathLike, Sequence[PathLike]]) -> Tuple[bytes, str]:
    """One file, or several files that are the consecutive parts of one model.bin."""
    if isinstance(path, (str, os.PathLike)):
        paths = [Path(path)]
    else:
        paths = [Path(p) for p in path]
        if not paths:
            raise ValueError("read_ct2_model: empty list of model.bin parts")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"CTranslate2 model file not found: {p}")
    source = str(paths[0]) if len(paths) == 1 else " + ".join(str(p) for p in paths)
    data = b"".join(p.read_bytes() for p in paths)
    return data, source


def _to_array(raw: memoryview, code: int, shape: Tuple[int, ...], cur: _Cursor, name: str) -> np.ndarray:
    if code not in _DTYPES:
        raise cur.fail(f"variable {name!r} has unknown dtype code {code} (known: {sorted(_DTYPES)})")
    dtype = _DTYPES[code]
    itemsize = 2 if dtype == "bfloat16" else dtype.itemsize
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * itemsize != len(raw):
        raise cur.fail(
            f"corrupt file: variable {name!r} of shape {shape} and dtype code {code} "
            f"declares {len(raw)} bytes, expected {count * itemsize}"
        )
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        arr = bits.view(np.float32)
    else:
        arr = np.frombuffer(raw, dtype=dtype).copy()
    return arr.reshape(shape)


def read_ct2_model(
    path: Union[PathLike, Sequence[PathLike]],
) -> Tuple[str, Dict[str, np.ndarray], Dict[str, str]]:
    """Parse a CTranslate2 model.bin.

    ``path`` is one file or a list of files to be concatenated in the given order (a model.bin shipped
    in parts).  Returns ``(spec_name, variables, aliases)``: arrays keep their stored dtype (bfloat16 is
    widened to float32); ``aliases`` maps an alias name to the variable name it stands for.
    """
    data, source = _load_bytes(path)
    cur = _Cursor(memoryview(data), source)

    (version,) = cur.unpack("<I", "binary version")
    if version != SUPPORTED_VERSION:
        raise CT2FormatError(
            f"{source}: unsupported CTranslate2 binary version {version} (this reader handles "
            f"version {SUPPORTED_VERSION}); not a model.bin, or written by another CTranslate2 release"
        )
    spec_name = cur.string("spec name")
    cur.unpack("<I", "spec revision")
    (n_vars,) = cur.unpack("<I", "variable count")

    variables: Dict[str, np.ndarray] = {}
    for i in range(n_vars):
        name = cur.string(f"name of variable {i}")
        (rank,) = cur.unpack("<B", f"rank of {name!r}")
        shape = cur.unpack(f"<{rank}I", f"shape of {name!r}") if rank else ()
        (code,) = cur.unpack("<B", f"dtype of {name!r}")
        (nbytes,) = cur.unpack("<I", f"byte count of {name!r}")
        raw = cur.take(nbytes, f"data of {name!r}")
        if name in variables:
            raise cur.fail(f"corrupt file: variable {name!r} appears twice")
        variables[name] = _to_array(raw, code, tuple(shape), cur, name)

    aliases: Dict[str, str] = {}
    (n_alias,) = cur.unpack("<I", "alias count")
    for i in range(n_alias):
        alias = cur.string(f"alias {i}")
        aliases[alias] = cur.string(f"target of alias {alias!r}")
    if cur.pos != len(data):
        raise cur.fail(f"corrupt file: {len(data) - cur.pos} unexpected trailing bytes")
    return spec_name, variables, aliases


def resolve(variables: Dict[str, np.ndarray], aliases: Dict[str, str], name: str, source: str = "") -> np.ndarray:
    """Variable ``name``, following aliases; KeyError naming the file and the missing variable."""
    seen: List[str] = []
    while name not in variables and name in aliases and name not in seen:
        seen.append(name)
        name = aliases[name]
    if name not in variables:
        where = f"{source}: " if source else ""
        raise KeyError(f"{where}variable {name!r} not found in CTranslate2 model")
    return variables[name]
