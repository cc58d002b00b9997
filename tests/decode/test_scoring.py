"""Scorer counts on hand-made reference/hypothesis pairs (counted by hand below), CER mode, the sclite-style
files and the score CLI."""

import re

import pytest

from cald_asr.bin.score import main as score_main
from cald_asr.data.kaldi_dir import write_kv
from cald_asr.scoring import score_files, score_texts

REFS = {
    "spkA-1": "a b c d",  # hyp: b -> x              C3 S1
    "spkA-2": "a b c",  # hyp: b dropped           C2 D1
    "spkB-1": "a b",  # hyp: e appended          C2 I1
    "spkB-2": "x y z",  # hyp: empty               D3
    "spkB-3": "p q",  # no hypothesis at all     D2 (listed as missing)
    "spkC-1": "ok",  # correct                  C1
}
HYPS = {
    "spkA-1": "a x c d",
    "spkA-2": "a c",
    "spkB-1": "a b e",
    "spkB-2": "",
    "spkC-1": "ok",
    "spkZ-9": "not in the references",
}
# totals by hand: Wrd 4+3+2+3+2+1 = 15; C 3+2+2+0+0+1 = 8; S 1; D 1+3+2 = 6; I 1; Err 8;
# sentences with an error: all but spkC-1 -> 5 of 6


def test_counts_by_hand():
    rep = score_texts(REFS, HYPS)
    per_utt = {u.utt: (u.count("C"), u.count("S"), u.count("D"), u.count("I")) for u in rep.utts}
    assert per_utt == {
        "spkA-1": (3, 1, 0, 0),
        "spkA-2": (2, 0, 1, 0),
        "spkB-1": (2, 0, 0, 1),
        "spkB-2": (0, 0, 3, 0),
        "spkB-3": (0, 0, 2, 0),
        "spkC-1": (1, 0, 0, 0),
    }
    d = rep.as_dict()
    assert (d["snt"], d["wrd"], d["n_corr"], d["n_sub"], d["n_del"], d["n_ins"], d["n_err"], d["n_snt_err"]) == (
        6,
        15,
        8,
        1,
        6,
        1,
        8,
        5,
    )
    assert d["corr"] == pytest.approx(100 * 8 / 15) and d["sub"] == pytest.approx(100 / 15)
    assert d["del"] == pytest.approx(40.0) and d["ins"] == pytest.approx(100 / 15)
    assert d["err"] == pytest.approx(100 * 8 / 15) and d["s_err"] == pytest.approx(100 * 5 / 6)
    assert d["missing"] == ["spkB-3"] and d["extra"] == ["spkZ-9"]
    a = rep.totals("spkA")
    assert (a.snt, a.wrd, a.corr, a.sub, a.dels, a.ins, a.snt_err) == (2, 7, 5, 1, 1, 0, 2)


def test_cer_counts_characters_and_spaces():
    # "ab cd" vs "ab d": units a b <space> c d vs a b <space> d -> C4 D1
    # "ab" vs "a b": a b vs a <space> b -> C2 I1;  "x  y" (two spaces) vs "x y": one boundary -> C3
    rep = score_texts(
        {"s-1": "ab cd", "s-2": "ab", "s-3": "x  y"}, {"s-1": "ab d", "s-2": "a b", "s-3": "x y"}, cer=True
    )
    d = rep.as_dict()
    assert (d["wrd"], d["n_corr"], d["n_sub"], d["n_del"], d["n_ins"], d["n_snt_err"]) == (10, 9, 0, 1, 1, 2)
    assert d["err"] == pytest.approx(20.0) and d["unit"] == "char"
    assert rep.utts[1].hyp == ["a", "<space>", "b"]


def test_score_dir_files(tmp_path):
    write_kv(tmp_path / "ref", REFS)
    write_kv(tmp_path / "hyp", HYPS)
    write_kv(tmp_path / "utt2spk", {u: "S" + u[3] for u in REFS})
    res = score_files(tmp_path / "ref", tmp_path / "hyp", utt2spk=tmp_path / "utt2spk", output_dir=tmp_path / "sc")
    assert res["n_err"] == 8
    ref_trn = (tmp_path / "sc" / "ref.trn").read_text().splitlines()
    hyp_trn = (tmp_path / "sc" / "hyp.trn").read_text().splitlines()
    assert ref_trn[0] == "a b c d (SA-spkA-1)" and hyp_trn[0] == "a x c d (SA-spkA-1)"
    assert "(SB-spkB-2)" in hyp_trn[3] and hyp_trn[3].startswith("(")  # empty hypothesis
    result = (tmp_path / "sc" / "result.txt").read_text()
    header = next(line for line in result.splitlines() if "SPKR" in line)
    assert re.findall(r"# Snt|# Wrd|Corr|Sub|Del|Ins|Err|S\.Err", header) == [
        "# Snt",
        "# Wrd",
        "Corr",
        "Sub",
        "Del",
        "Ins",
        "Err",
        "S.Err",
    ]
    avg = next(line for line in result.splitlines() if "Sum/Avg" in line)
    assert [float(v) for v in re.findall(r"[\d.]+", avg)] == [6, 15, 53.3, 6.7, 40.0, 6.7, 53.3, 83.3]
    sa = next(line for line in result.splitlines() if line.startswith("| SA "))
    assert [float(v) for v in re.findall(r"[\d.]+", sa)] == [2, 7, 71.4, 14.3, 14.3, 0.0, 28.6, 100.0]
    block = result[result.index("id: (SA-spkA-1)") :].split("\n\n")[0].splitlines()
    assert block[1:] == ["Scores: (#C #S #D #I) 3 1 0 0", "REF:  a B c d", "HYP:  a X c d", "Eval:   S"]
    block = result[result.index("id: (SA-spkA-2)") :].split("\n\n")[0].splitlines()
    assert block[2:] == ["REF:  a B c", "HYP:  a * c", "Eval:   D"]
    block = result[result.index("id: (SB-spkB-1)") :].split("\n\n")[0].splitlines()
    assert block[2:] == ["REF:  a b *", "HYP:  a b E", "Eval:     I"]
    block = result[result.index("id: (SB-spkB-3)") :].split("\n\n")[0]
    assert "no hypothesis" in block and "REF:  P Q" in block
    assert "Missing hypotheses (1, scored as deletions): spkB-3" in result
    assert "spkZ-9" in result


def test_score_cli(tmp_path, capsys):
    write_kv(tmp_path / "ref", REFS)
    write_kv(tmp_path / "hyp", HYPS)
    assert (
        score_main(
            [
                "--ref",
                str(tmp_path / "ref"),
                "--hyp",
                str(tmp_path / "hyp"),
                "--output_dir",
                str(tmp_path / "score_wer"),
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "WER 53.33% (Sub 1, Del 6, Ins 1 of 15 words; S.Err 83.33% of 6 utterances)" in out.out
    assert "no hypothesis for 'spkB-3'" in out.err
    assert (tmp_path / "score_wer" / "result.txt").is_file()
    assert (
        score_main(
            ["--ref", str(tmp_path / "nothere"), "--hyp", str(tmp_path / "hyp"), "--output_dir", str(tmp_path / "x")]
        )
        == 2
    )
