"""The token list (`tokens.txt`): one token per line, id = 0-based line index.

ESPnet order: `<blank>` (CTC blank) is id 0, `<unk>` id 1, then the real tokens, then optionally
`<sos/eos>` last, so that a model's output layer size is simply len(token_list).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

BLANK = "<blank>"
UNK = "<unk>"
SOS_EOS = "<sos/eos>"
SPECIALS = (BLANK, UNK, SOS_EOS)


class TokenListError(ValueError):
    pass


class TokenList:
    def __init__(self, tokens: Sequence[str], source: str = "<memory>"):
        tokens = list(tokens)
        if len(tokens) < 2 or tokens[0] != BLANK or tokens[1] != UNK:
            raise TokenListError(f"{source}: must start with '{BLANK}' (id 0) and '{UNK}' (id 1), got {tokens[:2]}")
        seen: Dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not tok or any(c.isspace() for c in tok):
                raise TokenListError(f"{source}:{i + 1}: token {tok!r} is empty or contains white space")
            if tok in seen:
                raise TokenListError(f"{source}:{i + 1}: duplicate token '{tok}' (first on line {seen[tok] + 1})")
            seen[tok] = i
        if SOS_EOS in seen and seen[SOS_EOS] != len(tokens) - 1:
            raise TokenListError(f"{source}:{seen[SOS_EOS] + 1}: '{SOS_EOS}' must be the last token")
        self.tokens: List[str] = tokens
        self.token2id: Dict[str, int] = seen

    @classmethod
    def build(cls, tokens: Iterable[str], add_sos_eos: bool = True) -> "TokenList":
        """`<blank>`, `<unk>`, the given tokens in order (specials among them skipped), optionally `<sos/eos>`."""
        body = [t for t in dict.fromkeys(tokens) if t not in SPECIALS]
        return cls([BLANK, UNK] + body + ([SOS_EOS] if add_sos_eos else []))

    @classmethod
    def load(cls, path: os.PathLike | str) -> "TokenList":
        path = Path(path)
        with open(path, "rb") as f:
            raw_lines = f.read().split(b"\n")
        if raw_lines and raw_lines[-1] == b"":
            raw_lines.pop()
        tokens = []
        for i, raw in enumerate(raw_lines, start=1):
            try:
                tokens.append(raw.decode("utf-8").rstrip("\r"))
            except UnicodeDecodeError as e:
                raise TokenListError(f"{path}:{i}: not valid UTF-8 ({e.reason})") from None
        return cls(tokens, source=str(path))

    def save(self, path: os.PathLike | str) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(t + "\n" for t in self.tokens), encoding="utf-8")
        os.replace(tmp, path)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, TokenList) and self.tokens == other.tokens

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def sos_eos_id(self) -> Optional[int]:
        return self.token2id.get(SOS_EOS)

    def tokens2ids(self, tokens: Iterable[str]) -> List[int]:
        return [self.token2id.get(t, 1) for t in tokens]

    def ids2tokens(self, ids: Iterable[int]) -> List[str]:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise TokenListError(f"token id {i} out of range for a list of {len(self.tokens)} tokens")
            out.append(self.tokens[i])
        return out
