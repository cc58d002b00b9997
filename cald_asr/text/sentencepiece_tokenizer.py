"""Subword tokenizer backed by a sentencepiece model (unigram or BPE), plus training of that model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import sentencepiece as spm

from cald_asr.text.token_list import TokenList
from cald_asr.text.tokenizer import Tokenizer


class SentencePieceTokenizer(Tokenizer):
    def __init__(self, model_path: os.PathLike | str, token_list: Optional[TokenList] = None):
        super().__init__(token_list)
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"sentencepiece model '{self.model_path}' does not exist")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))

    def text2tokens(self, text: str) -> List[str]:
        return self.sp.encode(text, out_type=str)

    def tokens2text(self, tokens: Iterable[str]) -> str:
        return self.sp.decode_pieces(list(tokens))

    def encode_with_unknown(self, text: str) -> Tuple[List[int], List[str]]:
        """Two ways to become `<unk>`: text the model itself cannot cover (its unknown id; the piece is the
        uncovered text, e.g. 'QZ'), which stays `<unk>` even when the token list happens to hold that text;
        and a piece of the model that the token list lacks (a list built from another model)."""
        token_list = self._require_token_list()
        ids: List[int] = []
        unknown: List[str] = []
        for p in self.sp.encode(text, out_type="proto").pieces:
            tid = token_list.unk_id if p.id == self.sp.unk_id() else token_list.token2id.get(p.piece, token_list.unk_id)
            if tid == token_list.unk_id:
                unknown.append(p.piece)
            ids.append(tid)
        return ids, unknown

    def pieces(self) -> List[str]:
        """All real pieces of the model in id order (its control and unknown symbols excluded)."""
        return [
            self.sp.id_to_piece(i)
            for i in range(self.sp.get_piece_size())
            if not (self.sp.is_control(i) or self.sp.is_unknown(i))
        ]


def train_sentencepiece(
    texts: Iterable[str],
    model_prefix: os.PathLike | str,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
) -> Path:
    """Train `<model_prefix>.model` on the given transcripts; returns the model path.

    Only `<unk>` is reserved (id 0): `<blank>` and `<sos/eos>` belong to the token list, not to the model.
    An unknown piece decodes to the text '<unk>' (sentencepiece's default is ' ⁇ '), as with CharTokenizer.
    Single-threaded so that the same text always gives the same model.
    """
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got '{model_type}'")
    sentences = [t for t in texts if t.strip()]
    if not sentences:
        raise ValueError("no non-empty transcript to train sentencepiece on")
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_prefix=str(prefix),
            vocab_size=int(vocab_size),
            model_type=model_type,
            character_coverage=character_coverage,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            unk_surface="<unk>",
            num_threads=1,
            input_sentence_size=10_000_000,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise ValueError(f"sentencepiece training with vocab_size={vocab_size} failed: {e}") from None
    return Path(str(prefix) + ".model")
