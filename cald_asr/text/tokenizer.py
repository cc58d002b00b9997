"""Common tokenizer API: text <-> tokens (tokenizer-specific), tokens <-> ids (through a TokenList)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, List, Optional, Tuple

from cald_asr.text.token_list import BLANK, SOS_EOS, TokenList


class Tokenizer(ABC):
    def __init__(self, token_list: Optional[TokenList] = None):
        self.token_list = token_list

    @abstractmethod
    def text2tokens(self, text: str) -> List[str]: ...

    @abstractmethod
    def tokens2text(self, tokens: Iterable[str]) -> str: ...

    def _require_token_list(self) -> TokenList:
        if self.token_list is None:
            raise ValueError(f"{type(self).__name__} has no token list; pass token_list= to map ids")
        return self.token_list

    def encode(self, text: str) -> List[int]:
        """Text to ids; symbols not in the token list become `<unk>` (id 1)."""
        return self.encode_with_unknown(text)[0]

    def encode_with_unknown(self, text: str) -> Tuple[List[int], List[str]]:
        """(ids, the symbols of `text` that became `<unk>`), so that callers can say which ones were lost."""
        token_list = self._require_token_list()
        tokens = self.text2tokens(text)
        return token_list.tokens2ids(tokens), [t for t in tokens if t not in token_list.token2id]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; `<blank>` and `<sos/eos>` are not text and are skipped, `<unk>` is kept as is."""
        tokens = [t for t in self._require_token_list().ids2tokens(ids) if t not in (BLANK, SOS_EOS)]
        return self.tokens2text(tokens)
