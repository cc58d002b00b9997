"""Symbols of transcripts that the token list lacks: encode turns them into `<unk>` without a word, so the
readers of transcripts (training data, scoring references) count them and name them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List

from cald_asr.text.tokenizer import Tokenizer

# A message names at most this many symbols (the most frequent): a wrong token list can miss hundreds.
MAX_LISTED = 20


@dataclass
class UnknownSymbols:
    n_tokens: int  # tokens in all texts together
    counts: Dict[str, int]  # symbol -> times it became <unk>, most frequent first
    ids: List[List[int]]  # every text's ids, in the order given (what encode returns)

    @property
    def n_unknown(self) -> int:
        return sum(self.counts.values())

    @property
    def share(self) -> float:
        return self.n_unknown / self.n_tokens if self.n_tokens else 0.0

    def symbols(self) -> str:
        """Like "'Q' x2, 'Z' x1"; repr shows invisible characters (a zero-width space is '\\u200b')."""
        listed = [f"{sym!r} x{n}" for sym, n in list(self.counts.items())[:MAX_LISTED]]
        more = len(self.counts) - MAX_LISTED
        return ", ".join(listed) + (f", ... ({more} more symbols)" if more > 0 else "")

    def message(self, source) -> str:
        return (
            f"{source}: {self.n_unknown} of {self.n_tokens} tokens ({100 * self.share:.2f} %) are not in the "
            f"token list and become <unk>: {self.symbols()}"
        )

    def as_dict(self) -> Dict[str, object]:
        return {"n_tokens": self.n_tokens, "n_unknown": self.n_unknown, "symbols": dict(self.counts)}


def unknown_symbols(tokenizer: Tokenizer, texts: Iterable[str]) -> UnknownSymbols:
    """Encode every text once; count its tokens and the symbols that became `<unk>`."""
    counts: Counter = Counter()
    ids: List[List[int]] = []
    n_tokens = 0
    for text in texts:
        text_ids, unknown = tokenizer.encode_with_unknown(text)
        ids.append(text_ids)
        n_tokens += len(text_ids)
        counts.update(unknown)
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return UnknownSymbols(n_tokens, ordered, ids)
