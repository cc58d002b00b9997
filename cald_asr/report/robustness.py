"""RESULTS.md's robustness tables (speech recipes): each model's WER on a test set and on its copies with white
noise at each SNR (stage 7's <set>_snr<k>), with 95 % bootstrap intervals, and each student's WER as a
multiple of the teacher's (the first model) under the same condition."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from cald_asr.data.kaldi_dir import read_kv
from cald_asr.data.noisy_dir import noisy_name
from cald_asr.report.sections import model_name
from cald_asr.scoring import score_texts
from cald_asr.scoring.bootstrap import DRAWS, SEED, report_interval

Cell = Optional[Tuple[float, float, float]]  # (WER, low, high) in %, None where the set was not decoded


def conditions(robust_set: str, snrs: Sequence[str]) -> List[Tuple[str, str]]:
    """(column title, decoded set) of the clean set and of each noisy copy."""
    return [("clean", robust_set)] + [(f"{k} dB", noisy_name(robust_set, k).name) for k in snrs]


def noisy_sets(robust_sets: Sequence[str], snrs: Sequence[str]) -> List[str]:
    return [s for r in robust_sets for _, s in conditions(r, snrs)[1:]]


def wer_cell(model_dir: Path, s: str, decode_tag: str, data_dir: Path, draws: int, seed: int) -> Cell:
    """The WER of one decoded set and its bootstrap interval, scored as cald_asr.scoring.score_files does."""
    hyp = model_dir / decode_tag / s / "1best_recog" / "text"
    if not hyp.is_file():
        return None
    report = score_texts(read_kv(data_dir / s / "text", allow_empty_value=True), read_kv(hyp, allow_empty_value=True))
    low, high = report_interval(report, draws=draws, seed=seed)
    return report.totals().percentages()["err"], low, high


def robustness_cells(
    models: Sequence[Path],
    robust_sets: Sequence[str],
    snrs: Sequence[str],
    decode_tag: str,
    data_dir: Path,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Dict[str, Dict[str, Cell]]:
    """{model: {decoded set: cell}} over every condition of every robust set."""
    return {
        str(m): {
            s: wer_cell(m, s, decode_tag, data_dir, draws, seed) for r in robust_sets for _, s in conditions(r, snrs)
        }
        for m in models
    }


def _wer(cell: Cell) -> str:
    return "-" if cell is None else f"{cell[0]:.2f} [{cell[1]:.2f}, {cell[2]:.2f}]"


def _ratio(student: Cell, teacher: Cell) -> str:
    if student is None or teacher is None:
        return "-"
    if teacher[0] == 0:
        return "-" if student[0] == 0 else "inf"
    return f"{student[0] / teacher[0]:.2f}"


def robustness_section(
    models: Sequence[Path],
    cells: Dict[str, Dict[str, Cell]],
    robust_sets: Sequence[str],
    snrs: Sequence[str],
    draws: int = DRAWS,
    seed: int = SEED,
) -> List[str]:
    """Per robust set: the table model x (clean, each SNR) of WER [95 % interval], then the students' WER over
    the teacher's (the first model); "-" where a set was not decoded or the teacher's WER is 0 as well."""
    if not robust_sets or not snrs:
        return []
    lines = [
        "## Robustness: WER (%) [95 % bootstrap interval] under white noise",
        "",
        "Each test set and its copies with white Gaussian noise at the column's SNR, exact per utterance (stage 7, "
        "cald_asr.bin.make_noisy_set); intervals: the [2.5, 97.5] percentiles of the WER of "
        f"{draws} resamplings of the set's utterances with replacement (seed {seed}). "
        f"Ratios: a model's WER over the teacher's ({model_name(models[0])}) in the same column.",
        "",
    ]
    for r in robust_sets:
        cond = conditions(r, snrs)
        head = "| " + " | ".join(title for title, _ in cond) + " |"
        align = "|---|" + "---:|" * len(cond)
        lines += [f"### {r}", "", "| model " + head, align]
        for m in models:
            lines.append(f"| {model_name(m)} | " + " | ".join(_wer(cells[str(m)][s]) for _, s in cond) + " |")
        if len(models) > 1:
            teacher = cells[str(models[0])]
            lines += ["", "| WER / teacher's WER " + head, align]
            for m in models[1:]:
                ratios = [_ratio(cells[str(m)][s], teacher[s]) for _, s in cond]
                lines.append(f"| {model_name(m)} | " + " | ".join(ratios) + " |")
        lines.append("")
    return lines
