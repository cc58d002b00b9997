"""Word (or character) error counts per utterance and in total, aligned by jiwer (Levenshtein, equal costs).

Units: words are white-space separated; in CER mode every character is a unit and a word boundary is
the unit `<space>` (ESPnet's score_cer convention), runs of white space counting as one boundary.
A reference utterance without a hypothesis is scored against an empty one (all deletions) and
flagged `missing`; hypotheses without a reference are not scored (their ids are returned as `extra`).

Percentages follow sclite: Corr, Sub, Del, Ins and Err are relative to the reference units
(Err = Sub + Del + Ins, so it can exceed 100); S.Err is the share of utterances with any error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import jiwer

from cald_asr.data.kaldi_dir import c_sort_key

SPACE = "<space>"
# alignment operations, per aligned column
CORRECT, SUB, DEL, INS = "C", "S", "D", "I"
_JIWER_OPS = {"equal": CORRECT, "substitute": SUB, "delete": DEL, "insert": INS}


def units(text: str, cer: bool = False) -> List[str]:
    if not cer:
        return text.split()
    return [SPACE if c == " " else c for c in " ".join(text.split())]


@dataclass
class UttScore:
    utt: str
    spk: str
    ref: List[str]
    hyp: List[str]
    columns: List[Tuple[str, Optional[str], Optional[str]]]  # (op, ref unit or None, hyp unit or None)
    missing: bool = False

    def count(self, op: str) -> int:
        return sum(1 for c in self.columns if c[0] == op)

    @property
    def errors(self) -> int:
        return sum(1 for c in self.columns if c[0] != CORRECT)


@dataclass
class Totals:
    snt: int = 0
    wrd: int = 0
    corr: int = 0
    sub: int = 0
    dels: int = 0
    ins: int = 0
    snt_err: int = 0

    def add(self, u: UttScore) -> None:
        self.snt += 1
        self.wrd += len(u.ref)
        self.corr += u.count(CORRECT)
        self.sub += u.count(SUB)
        self.dels += u.count(DEL)
        self.ins += u.count(INS)
        self.snt_err += int(u.errors > 0)

    @property
    def err(self) -> int:
        return self.sub + self.dels + self.ins

    def percentages(self) -> Dict[str, float]:
        def pct(n: int, d: int) -> float:
            return 100.0 * n / d if d else (0.0 if n == 0 else float("inf"))

        return {
            "corr": pct(self.corr, self.wrd),
            "sub": pct(self.sub, self.wrd),
            "del": pct(self.dels, self.wrd),
            "ins": pct(self.ins, self.wrd),
            "err": pct(self.err, self.wrd),
            "s_err": pct(self.snt_err, self.snt),
        }


@dataclass
class ScoreReport:
    utts: List[UttScore]
    cer: bool
    extra: List[str] = field(default_factory=list)  # hypothesis ids with no reference

    def totals(self, spk: Optional[str] = None) -> Totals:
        t = Totals()
        for u in self.utts:
            if spk is None or u.spk == spk:
                t.add(u)
        return t

    def speakers(self) -> List[str]:
        return sorted({u.spk for u in self.utts}, key=c_sort_key)

    @property
    def missing(self) -> List[str]:
        return [u.utt for u in self.utts if u.missing]

    def as_dict(self) -> Dict[str, object]:
        """The numbers RESULTS.md reports: Snt, Wrd (counts), Corr..S.Err (percentages), raw counts."""
        t = self.totals()
        return {
            "snt": t.snt,
            "wrd": t.wrd,
            **t.percentages(),
            "n_corr": t.corr,
            "n_sub": t.sub,
            "n_del": t.dels,
            "n_ins": t.ins,
            "n_err": t.err,
            "n_snt_err": t.snt_err,
            "missing": self.missing,
            "extra": list(self.extra),
            "unit": "char" if self.cer else "word",
        }


def speaker_of(utt: str, utt2spk: Optional[Mapping[str, str]]) -> str:
    """utt2spk's speaker, else the utterance id up to its first '-' (ids begin with the speaker)."""
    if utt2spk is not None and utt in utt2spk:
        return utt2spk[utt]
    return utt.split("-", 1)[0]


def score_texts(
    refs: Mapping[str, str], hyps: Mapping[str, str], cer: bool = False, utt2spk: Optional[Mapping[str, str]] = None
) -> ScoreReport:
    """Align every reference utterance with its hypothesis; utterances in C-locale order."""
    utts = sorted(refs, key=c_sort_key)
    ref_units = [units(refs[u], cer) for u in utts]
    hyp_units = [units(hyps.get(u, ""), cer) for u in utts]
    scores = []
    if utts:
        out = jiwer.process_words([" ".join(r) for r in ref_units], [" ".join(h) for h in hyp_units])
        for u, r, h, chunks in zip(utts, out.references, out.hypotheses, out.alignments):
            cols: List[Tuple[str, Optional[str], Optional[str]]] = []
            for ch in chunks:
                op = _JIWER_OPS[ch.type]
                n = max(ch.ref_end_idx - ch.ref_start_idx, ch.hyp_end_idx - ch.hyp_start_idx)
                for i in range(n):
                    cols.append(
                        (
                            op,
                            r[ch.ref_start_idx + i] if op != INS else None,
                            h[ch.hyp_start_idx + i] if op != DEL else None,
                        )
                    )
            scores.append(UttScore(u, speaker_of(u, utt2spk), list(r), list(h), cols, missing=u not in hyps))
    extra = sorted((u for u in hyps if u not in refs), key=c_sort_key)
    return ScoreReport(scores, cer, extra)
