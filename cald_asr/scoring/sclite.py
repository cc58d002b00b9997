"""sclite-style outputs of a ScoreReport: ref.trn / hyp.trn and result.txt.

trn lines are `<units separated by spaces> (<spk>-<utt-id>)`. result.txt starts with sclite's
SYSTEM SUMMARY table (one line per speaker, then Sum/Avg; `# Snt`, `# Wrd` counts, the rest
percentages), so `grep -e Avg -e SPKR result.txt` gives what ESPnet's RESULTS.md scripts read, then one
block per utterance in sclite's pralign form: correct units in lower case, errors in upper case,
`***` for the missing side, and an Eval line marking S/D/I under each column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

from cald_asr.scoring.wer import CORRECT, DEL, INS, ScoreReport, Totals, UttScore


def trn_id(u: UttScore) -> str:
    return f"({u.spk}-{u.utt})"


def trn_lines(report: ScoreReport, side: str) -> List[str]:
    return [f"{' '.join(getattr(u, side))} {trn_id(u)}".lstrip() for u in report.utts]


def _row(name: str, t: Totals) -> str:
    p = t.percentages()
    return (
        f"| {name:<10s}| {t.snt:6d} {t.wrd:7d} | {p['corr']:6.1f} {p['sub']:6.1f} {p['del']:6.1f} "
        f"{p['ins']:6.1f} {p['err']:6.1f} {p['s_err']:6.1f} |"
    )


def summary_table(report: ScoreReport, title: str) -> List[str]:
    pct_names = " ".join(f"{n:>6s}" for n in ("Corr", "Sub", "Del", "Ins", "Err", "S.Err"))
    header = f"| {'SPKR':<10s}| {'# Snt':>6s} {'# Wrd':>7s} | {pct_names} |"
    width = len(header)
    rule = "|" + "-" * (width - 2) + "|"
    double = "|" + "=" * (width - 2) + "|"
    lines = [
        f"{'SYSTEM SUMMARY PERCENTAGES by SPEAKER':^{width}s}",
        "",
        "," + "-" * (width - 2) + ".",
        f"|{title:^{width - 2}s}|",
        rule,
        header,
        rule,
    ]
    lines += [_row(spk, report.totals(spk)) for spk in report.speakers()]
    lines += [double, _row("Sum/Avg", report.totals()), double]
    return lines


def _case(unit: str, correct: bool) -> str:
    return unit.lower() if correct else unit.upper()


def alignment_block(u: UttScore) -> List[str]:
    ref, hyp, ev = [], [], []
    for op, r, h in u.columns:
        w = max(len(r or ""), len(h or ""))
        ok = op == CORRECT
        ref.append(("*" * w if op == INS else _case(r, ok)).ljust(w))
        hyp.append(("*" * w if op == DEL else _case(h, ok)).ljust(w))
        ev.append(("" if ok else op).ljust(w))
    lines = [f"id: {trn_id(u)}"]
    if u.missing:
        lines.append("Note: no hypothesis for this utterance (scored as all deletions)")
    lines += [
        f"Scores: (#C #S #D #I) {u.count(CORRECT)} {u.count('S')} {u.count(DEL)} {u.count(INS)}",
        "REF:  " + " ".join(ref),
        "HYP:  " + " ".join(hyp),
        ("Eval: " + " ".join(ev)).rstrip(),
        "",
    ]
    return lines


def result_text(report: ScoreReport, title: str = "hyp.trn") -> str:
    t = report.totals()
    unit = "characters" if report.cer else "words"
    lines = summary_table(report, title)
    lines += [
        "",
        f"Counts ({unit}): Snt {t.snt}  Wrd {t.wrd}  Corr {t.corr}  Sub {t.sub}  Del {t.dels}  "
        f"Ins {t.ins}  Err {t.err}  S.Err {t.snt_err}",
    ]
    if report.missing:
        lines.append(f"Missing hypotheses ({len(report.missing)}, scored as deletions): {' '.join(report.missing)}")
    if report.extra:
        lines.append(f"Hypotheses without a reference ({len(report.extra)}, not scored): {' '.join(report.extra)}")
    lines += ["", "DETAILED ALIGNMENTS (correct in lower case, errors in upper case; *** = nothing)", ""]
    for u in report.utts:
        lines += alignment_block(u)
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_score_dir(report: ScoreReport, out_dir: os.PathLike | str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "ref.trn", "".join(line + "\n" for line in trn_lines(report, "ref")))
    _write(out / "hyp.trn", "".join(line + "\n" for line in trn_lines(report, "hyp")))
    _write(out / "result.txt", result_text(report))
    return out
