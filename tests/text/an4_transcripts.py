"""Real transcripts for the tokenizer tests: CMU AN4, lines '<s> TEXT </s> (utt-id)' or 'TEXT (utt-id)'."""

from __future__ import annotations

import re
from typing import Dict

from shared_data import SHARED_DATA

AN4_ETC = SHARED_DATA / "an4_mfcc" / "etc"
_LINE = re.compile(r"^(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^()\s]+)\)\s*$")


def an4_transcripts(split: str) -> Dict[str, str]:
    """{utt-id: TEXT} for split 'train' or 'test'."""
    out = {}
    path = AN4_ETC / f"an4_{split}.transcription"
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"{path}:{i}: not 'TEXT (utt-id)': {line!r}")
        out[m.group(2)] = m.group(1)
    return out
