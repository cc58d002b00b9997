"""Scoring decoded text against references: WER/CER counts (jiwer) and sclite-style reports."""

from __future__ import annotations

import os
from typing import Dict, Optional

from cald_asr.data.kaldi_dir import read_kv
from cald_asr.scoring.sclite import result_text, write_score_dir
from cald_asr.scoring.wer import ScoreReport, score_texts

__all__ = ["ScoreReport", "result_text", "score_files", "score_texts", "write_score_dir"]


def score_files(ref: os.PathLike | str, hyp: os.PathLike | str, cer: bool = False,
                utt2spk: Optional[os.PathLike | str] = None,
                output_dir: Optional[os.PathLike | str] = None) -> Dict[str, object]:
    """Score Kaldi `text` files; returns ScoreReport.as_dict() (Snt, Wrd, Corr, Sub, Del, Ins, Err, S.Err
    and raw counts), writing ref.trn, hyp.trn and result.txt to output_dir when given."""
    report = score_texts(read_kv(ref, allow_empty_value=True), read_kv(hyp, allow_empty_value=True), cer,
                         read_kv(utt2spk) if utt2spk is not None else None)
    if output_dir is not None:
        write_score_dir(report, output_dir)
    return report.as_dict()
