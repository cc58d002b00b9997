"""Character tokenizer: one token per character, the space written as `<space>` (ESPnet's convention)."""

from __future__ import annotations

from typing import Iterable, List, Optional

from cald_asr.text.token_list import TokenList
from cald_asr.text.tokenizer import Tokenizer

SPACE = "<space>"


class CharTokenizer(Tokenizer):
    def __init__(self, token_list: Optional[TokenList] = None, space_symbol: str = SPACE):
        super().__init__(token_list)
        self.space_symbol = space_symbol

    def text2tokens(self, text: str) -> List[str]:
        # Runs of white space are one word boundary; keeping them would make '<space> <space>' a valid output.
        return [self.space_symbol if c == " " else c for c in " ".join(text.split())]

    def tokens2text(self, tokens: Iterable[str]) -> str:
        return "".join(" " if t == self.space_symbol else t for t in tokens)
