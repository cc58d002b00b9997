"""Tokenizers and token lists."""

from __future__ import annotations

import os
from typing import Optional

from cald_asr.text.char_tokenizer import CharTokenizer
from cald_asr.text.sentencepiece_tokenizer import SentencePieceTokenizer, train_sentencepiece
from cald_asr.text.token_list import TokenList
from cald_asr.text.tokenizer import Tokenizer

__all__ = ["CharTokenizer", "SentencePieceTokenizer", "TokenList", "Tokenizer", "build_tokenizer",
           "train_sentencepiece"]


def build_tokenizer(token_type: str, token_list: "TokenList | os.PathLike | str",
                    bpemodel: Optional[os.PathLike | str] = None) -> Tokenizer:
    """The tokenizer a recipe's `token_type` names, tied to its `tokens.txt` (and `bpe.model` for bpe)."""
    if not isinstance(token_list, TokenList):
        token_list = TokenList.load(token_list)
    if token_type == "char":
        return CharTokenizer(token_list)
    if token_type == "bpe":
        if bpemodel is None:
            raise ValueError("token_type 'bpe' needs bpemodel=<path to bpe.model>")
        return SentencePieceTokenizer(bpemodel, token_list)
    raise ValueError(f"unknown token_type '{token_type}' (expected 'char' or 'bpe')")
