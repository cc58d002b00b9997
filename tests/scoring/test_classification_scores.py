"""Accuracy and macro-F1 on hand-made labels, worked out by hand in the comments."""

import pytest

from cald_asr.scoring.accuracy import accuracy, macro_f1, per_class_scores, score_labels

REFS = ["a", "a", "b", "b", "c"]
HYPS = ["a", "b", "b", "b", "a"]


def test_accuracy_by_hand():
    assert accuracy(REFS, HYPS) == pytest.approx(60.0)  # positions 0, 2, 3 of 5
    assert accuracy(["x"], ["x"]) == 100.0
    assert accuracy([0, 1, 1, 0], [1, 1, 1, 1]) == 50.0


def test_macro_f1_by_hand():
    # a: TP 1 (pos 0), FP 1 (pos 4), FN 1 (pos 1) -> F1 = 2/(2+1+1) = 0.5
    # b: TP 2, FP 1 (pos 1), FN 0 -> F1 = 4/5 = 0.8
    # c: TP 0, FP 0, FN 1 -> F1 = 0
    scores = per_class_scores(REFS, HYPS)
    assert scores["a"]["f1"] == pytest.approx(50.0)
    assert scores["b"]["f1"] == pytest.approx(80.0)
    assert scores["c"]["f1"] == pytest.approx(0.0)
    assert scores["b"]["precision"] == pytest.approx(200 / 3) and scores["b"]["recall"] == pytest.approx(100.0)
    assert scores["a"]["support"] == 2 and scores["c"]["support"] == 1
    assert macro_f1(REFS, HYPS) == pytest.approx((50 + 80 + 0) / 3)


def test_macro_f1_differs_from_accuracy_on_imbalanced_labels():
    # always guessing the majority: accuracy 80 %, but the minority class scores F1 0
    refs = ["pos"] * 8 + ["neg"] * 2
    hyps = ["pos"] * 10
    assert accuracy(refs, hyps) == 80.0
    # pos: TP 8, FP 2, FN 0 -> 16/18; neg: F1 0
    assert macro_f1(refs, hyps) == pytest.approx((1600 / 18 + 0) / 2)


def test_a_class_absent_from_both_sides_is_left_out():
    assert macro_f1(["a", "b"], ["a", "b"], labels=["a", "b", "c"]) == 100.0


def test_score_labels_by_utterance():
    ref = {"u1": "positive", "u2": "negative", "u3": "negative", "u4": "positive"}
    hyp = {"u1": "positive", "u2": "positive", "u4": "positive", "u9": "negative"}
    r = score_labels(ref, hyp, ["negative", "positive"])
    # u3 unclassified counts as wrong; u9 has no reference and is not scored
    assert (r.n, r.correct, r.accuracy, r.error) == (4, 2, 50.0, 50.0)
    assert r.missing == ["u3"] and r.extra == ["u9"]
    # negative: TP 0, FP 0, FN 2 -> 0; positive: TP 2, FP 1 (u2), FN 0 -> 4/5
    assert r.macro_f1 == pytest.approx(40.0)


def test_mismatched_or_empty_inputs_are_errors():
    with pytest.raises(ValueError, match="3 references but 2 hypotheses"):
        accuracy([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="nothing to score"):
        accuracy([], [])
