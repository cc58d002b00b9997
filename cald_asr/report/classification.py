"""The text recipes' RESULTS.md (make_results --task cls): every classified set scored, the data sets described,
accuracy, macro-F1, time per example and parameters per model and set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cald_asr.convert import count_params
from cald_asr.data.kaldi_dir import read_kv
from cald_asr.data.text_dataset import DESCRIPTION, LABEL, NUM_TOKENS
from cald_asr.models.model_file import load_model
from cald_asr.report.sections import commands_section, env_header, model_name, per_model_tables
from cald_asr.scoring.accuracy import score_labels


def score_model(
    model_dir: Path, test_sets: Sequence[str], tag: str, data_dir: Path, labels: Sequence[str]
) -> Dict[str, Dict]:
    out = {}
    for s in test_sets:
        dec = model_dir / tag / s
        if not (dec / LABEL).is_file():
            continue
        report = score_labels(read_kv(data_dir / s / LABEL), read_kv(dec / LABEL), labels).as_dict()
        timing = read_kv(dec / "timing") if (dec / "timing").is_file() else {}
        report["seconds_per_example"] = float(timing.get("seconds_per_example", "nan"))
        report["threads"] = timing.get("threads", "?")
        report["batch_size"] = timing.get("batch_size", "?")
        report["failed_utts"] = int(timing.get("failed", 0))
        (dec / "score_acc").mkdir(parents=True, exist_ok=True)
        (dec / "score_acc" / "result.json").write_text(json.dumps(report, indent=1))
        out[s] = report
    return out


def model_scores(model_dir: Path, test_sets: Sequence[str], tag: str, data_dir: Path) -> Dict[str, Dict]:
    """score_model with the model's own labels, plus what the tables say of the model: `_mixer`, `_params`."""
    model, config = load_model(model_dir)
    sc = score_model(model_dir, test_sets, tag, data_dir, config["labels"])
    mixer = config.get("mixer") or "attention"
    conf = config.get("mixer_conf") or {}
    if mixer == "linformer":
        mixer += f" (k {conf.get('k', 256)}, {conf.get('sharing', 'none')})"
    sc.update(_params=count_params(model), _mixer=mixer)
    return sc


def describe_set(data_dir: Path, name: str, role: str) -> str:
    d = data_dir / name
    if not (d / LABEL).is_file():
        return f"- {role} `{name}`: not found under {data_dir}"
    labels = list(read_kv(d / LABEL).values())
    counts = ", ".join(f"{c} {labels.count(c):,}" for c in sorted(set(labels)))
    line = f"- {role} `{name}`: {len(labels):,} examples ({counts})"
    if (d / NUM_TOKENS).is_file():
        n = [int(v) for v in read_kv(d / NUM_TOKENS).values()]
        line += f", {sum(n) / len(n):.1f} tokens on average (max {max(n)})"
    if (d / DESCRIPTION).is_file():
        line += f"; {(d / DESCRIPTION).read_text(encoding='utf-8').strip()}"
    return line


def describe_sets(
    data_dir: Path, train_set: Optional[str], valid_set: Optional[str], test_sets: Sequence[str]
) -> List[str]:
    """The report's data section: the training and dev sets, then every other test set."""
    lines = []
    for name, role in ((train_set, "training"), (valid_set, "dev (selects best/)")):
        if name:
            lines.append(describe_set(data_dir, name, role))
    for s in test_sets:
        if s != valid_set:
            lines.append(describe_set(data_dir, s, "test"))
    return lines


def render(
    models: List[Path],
    scores: Dict[str, Dict],
    test_sets: Sequence[str],
    commands: List[str],
    recipe_dir: Path,
    data_lines: List[str],
) -> str:
    lines = env_header(recipe_dir) + [
        "## Data",
        "",
        *data_lines,
        "",
        "## Accuracy (%) / macro-F1 (%) / time per example / parameters",
        "",
    ]
    head = "| model | mixer | params | " + " | ".join(f"{s} acc | {s} macro-F1 | {s} ms/example" for s in test_sets)
    lines += [head + " |", "|---|---|---:|" + "---:|---:|---:|" * len(test_sets)]
    for m in models:
        sc = scores[str(m)]
        row = [model_name(m), sc["_mixer"], f"{sc['_params']:,}"]
        for s in test_sets:
            r = sc.get(s)
            row += (
                [f"{r['accuracy']:.2f}", f"{r['macro_f1']:.2f}", f"{1000 * r['seconds_per_example']:.1f}"]
                if r
                else ["-", "-", "-"]
            )
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Time per example: tokenising and running the model, divided by the examples, at the batch size "
        "and threads listed per model below (stage 7 runs batch 1: the latency of one example); the first "
        "call is not timed.",
        "",
    ]
    lines += per_model_tables(
        models,
        scores,
        test_sets,
        "|dataset|N|correct|acc|macro-F1|failed|ms/example|batch|threads|",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _set_row,
    )
    return "\n".join(lines + commands_section(commands))


def _set_row(s: str, r: Dict) -> str:
    return (
        f"|{s}|{r['n']}|{r['correct']}|{r['accuracy']:.2f}|{r['macro_f1']:.2f}|{r['failed_utts']}|"
        f"{1000 * r['seconds_per_example']:.1f}|{r['batch_size']}|{r['threads']}|"
    )
