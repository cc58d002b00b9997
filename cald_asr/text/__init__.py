"""Tokenizers and token lists."""

from __future__ import annotations

import os
from typing import Optional

from cald_asr.text.char_tokenizer import CharTokenizer
from cald_asr.text.sentencepiece_tokenizer import SentencePieceTokenizer, train_sentencepiece
from cald_asr.text.token_list import TokenList
from cald_asr.text.tokenizer import Tokenizer
from cald_asr.text.unknown import UnknownSymbols, unknown_symbols

__all__ = [
    "CharTokenizer",
    "SentencePieceTokenizer",
    "TokenList",
    "Tokenizer",
    "UnknownSymbols",
    "build_tokenizer",
    "tokenizer_from_config",
    "train_sentencepiece",
    "unknown_symbols",
]


def build_tokenizer(
    token_type: str, token_list: "TokenList | os.PathLike | str", bpemodel: Optional[os.PathLike | str] = None
) -> Tokenizer:
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


def tokenizer_from_config(
    config: dict, bpemodel: Optional[os.PathLike | str] = None, source: str = "config"
) -> Tokenizer:
    """The tokenizer of a model config: its `token_list`, `token_type` and `bpemodel` (`bpemodel` overrides
    the config's, which is relative to the recipe dir)."""
    if not config.get("token_list"):
        raise ValueError(f"{source}: has no token_list")
    bpemodel = bpemodel or config.get("bpemodel")
    if bpemodel and not os.path.isfile(bpemodel):
        raise ValueError(f"{source}: bpemodel '{bpemodel}' not found")
    return build_tokenizer(config.get("token_type", "char"), TokenList(config["token_list"], source=source), bpemodel)
