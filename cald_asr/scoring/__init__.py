"""Scoring decoded text against references: WER/CER counts (jiwer) and sclite-style reports."""

from __future__ import annotations

import os
from typing import Dict, Optional

from cald_asr.data.kaldi_dir import read_kv
from cald_asr.scoring.sclite import result_text, write_score_dir
from cald_asr.scoring.wer import ScoreReport, score_texts
from cald_asr.text.tokenizer import Tokenizer
from cald_asr.text.unknown import unknown_symbols

__all__ = ["ScoreReport", "result_text", "score_files", "score_texts", "write_score_dir"]


def score_files(
    ref: os.PathLike | str,
    hyp: os.PathLike | str,
    cer: bool = False,
    utt2spk: Optional[os.PathLike | str] = None,
    output_dir: Optional[os.PathLike | str] = None,
    tokenizer: Optional[Tokenizer] = None,
) -> Dict[str, object]:
    """Score Kaldi `text` files; returns ScoreReport.as_dict() (Snt, Wrd, Corr, Sub, Del, Ins, Err, S.Err
    and raw counts), writing ref.trn, hyp.trn and result.txt to output_dir when given.

    With the model's `tokenizer`, the result also holds `ref_unknown` (n_tokens, n_unknown, symbols) and
    `warnings`: reference symbols outside its token list, which the model can never output."""
    refs = read_kv(ref, allow_empty_value=True)
    report = score_texts(
        refs, read_kv(hyp, allow_empty_value=True), cer, read_kv(utt2spk) if utt2spk is not None else None
    )
    if output_dir is not None:
        write_score_dir(report, output_dir)
    out = report.as_dict()
    if tokenizer is not None:
        unk = unknown_symbols(tokenizer, refs.values())
        out["ref_unknown"] = unk.as_dict()
        out["warnings"] = [unk.message(ref)] if unk.n_unknown else []
    return out
