"""Classification scores: accuracy and macro-F1 (%), over utterance ids, as the text recipes report them.

Macro-F1 is the unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class that never occurs
in either the references or the hypotheses has no F1 and is left out of the mean, and a class that occurs
in only one of them scores 0 (as scikit-learn's f1_score with zero_division=0). A reference without a
hypothesis counts as wrong (it was not classified) and is listed in `missing`; hypotheses without a
reference are not scored and are listed in `extra`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

from cald_asr.data.kaldi_dir import c_sort_key


@dataclass
class ClassificationReport:
    n: int
    correct: int
    accuracy: float  # %
    macro_f1: float  # %
    per_class: Dict[str, Dict[str, float]]  # label -> {precision, recall, f1 (%), support}
    missing: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)

    @property
    def error(self) -> float:
        return 100.0 - self.accuracy

    def as_dict(self) -> Dict[str, object]:
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "error": self.error,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class,
            "missing": self.missing,
            "extra": self.extra,
        }


def accuracy(refs: Sequence, hyps: Sequence) -> float:
    """Share (%) of positions where hyps equals refs."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("nothing to score")
    return 100.0 * sum(r == h for r, h in zip(refs, hyps)) / len(refs)


def per_class_scores(refs: Sequence, hyps: Sequence, labels: Optional[Sequence] = None) -> Dict[str, Dict[str, float]]:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    classes = list(labels) if labels is not None else sorted(set(refs) | set(hyps), key=str)
    out = {}
    for c in classes:
        tp = sum(r == c and h == c for r, h in zip(refs, hyps))
        fp = sum(r != c and h == c for r, h in zip(refs, hyps))
        fn = sum(r == c and h != c for r, h in zip(refs, hyps))
        if tp + fp + fn == 0:
            continue  # absent from both: no F1 to average
        out[str(c)] = {
            "precision": 100.0 * tp / (tp + fp) if tp + fp else 0.0,
            "recall": 100.0 * tp / (tp + fn) if tp + fn else 0.0,
            "f1": 100.0 * 2 * tp / (2 * tp + fp + fn),
            "support": tp + fn,
        }
    return out


def macro_f1(refs: Sequence, hyps: Sequence, labels: Optional[Sequence] = None) -> float:
    """Unweighted mean F1 (%) over the classes present in refs or hyps (restricted to `labels` if given)."""
    scores = per_class_scores(refs, hyps, labels)
    if not scores:
        raise ValueError("nothing to score")
    return sum(s["f1"] for s in scores.values()) / len(scores)


def score_labels(
    ref: Mapping[str, str], hyp: Mapping[str, str], labels: Optional[Sequence[str]] = None
) -> ClassificationReport:
    """Score hypotheses keyed by utterance id against references keyed the same way."""
    utts = sorted(ref, key=c_sort_key)
    if not utts:
        raise ValueError("no references to score")
    missing = [u for u in utts if u not in hyp]
    extra = sorted((u for u in hyp if u not in ref), key=c_sort_key)
    r = [ref[u] for u in utts]
    h = [hyp.get(u) for u in utts]  # None: never equal to a reference label
    per_class = per_class_scores(r, h, labels if labels is not None else sorted(set(r) | {x for x in h if x}))
    correct = sum(a == b for a, b in zip(r, h))
    return ClassificationReport(
        len(utts),
        correct,
        100.0 * correct / len(utts),
        sum(s["f1"] for s in per_class.values()) / max(len(per_class), 1),
        per_class,
        missing,
        extra,
    )
