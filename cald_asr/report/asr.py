"""Stage 8's report of the speech recipes: every decoded test set scored (sclite-style, WER and CER, with
reference symbols outside each model's token list counted), and RESULTS.md's WER / CER / RTF / parameters
table, the robustness tables (cald_asr.report.robustness) and per-model tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cald_asr.convert import count_params
from cald_asr.data.kaldi_dir import read_kv
from cald_asr.models.model_file import load_model
from cald_asr.report.sections import commands_section, env_header, model_name, per_model_tables
from cald_asr.scoring import score_files
from cald_asr.text import Tokenizer, tokenizer_from_config


def model_tokenizer(model_dir: Path, config: Dict) -> Optional[Tokenizer]:
    """The model's tokenizer, to check the references against its token list; None (with a warning) if its
    bpe model is not at hand, since the scores do not need it."""
    try:
        return tokenizer_from_config(config, source=str(model_dir / "config.yaml"))
    except ValueError as e:
        print(f"make_results: warning: {e}; references not checked against the token list", file=sys.stderr)
        return None


def score_model(
    model_dir: Path, test_sets: Sequence[str], decode_tag: str, data_dir: Path, tokenizer: Optional[Tokenizer] = None
) -> Dict[str, Dict]:
    out = {}
    for s in test_sets:
        dec = model_dir / decode_tag / s
        hyp = dec / "1best_recog" / "text"
        if not hyp.is_file():
            continue
        res = score_files(
            data_dir / s / "text",
            hyp,
            output_dir=dec / "score_wer",
            utt2spk=data_dir / s / "utt2spk" if (data_dir / s / "utt2spk").is_file() else None,
            tokenizer=tokenizer,
        )
        for w in res.get("warnings", []):
            print(f"make_results: warning: {model_name(model_dir)}: {w}", file=sys.stderr)
        # CER beside WER (ESPnet's score_cer): characters, spaces included, of the same hypotheses
        res["cer"] = score_files(data_dir / s / "text", hyp, cer=True, output_dir=dec / "score_cer")["err"]
        rtf_file = dec / "rtf"
        res["rtf"] = float(read_kv(rtf_file)["rtf"]) if rtf_file.is_file() else float("nan")
        failed = dec / "failed"
        res["failed_utts"] = sum(1 for line in failed.open() if line.strip()) if failed.is_file() else 0
        (dec / "score_wer" / "result.json").write_text(json.dumps(res, indent=1, default=str))
        out[s] = res
    return out


def render(
    models: List[Path],
    scores: Dict[str, Dict[str, Dict]],
    test_sets: Sequence[str],
    commands: List[str],
    recipe_dir: Path,
    robustness: Sequence[str] = (),
    detail_sets: Optional[Sequence[str]] = None,
) -> str:
    """RESULTS.md: the table of `test_sets`, then the `robustness` section's lines, then a table per model of
    `detail_sets` (default: `test_sets`)."""
    lines = env_header(recipe_dir) + [
        "## WER and CER (%) / real-time factor of decoding / parameters",
        "",
        "| model | mixer | params | " + " | ".join(f"{s} WER | {s} CER | {s} RTF" for s in test_sets) + " |",
        "|---|---|---:|" + "---:|---:|---:|" * len(test_sets),
    ]
    for m in models:
        _, config = load_model(m)
        row = [model_name(m), config.get("mixer") or "attention", f"{scores[str(m)]['_params']:,}"]
        for s in test_sets:
            r = scores[str(m)].get(s)
            row += [f"{r['err']:.2f}", f"{r['cer']:.2f}", f"{r['rtf']:.4f}"] if r else ["-", "-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += robustness
    lines += per_model_tables(
        models,
        scores,
        detail_sets if detail_sets is not None else test_sets,
        "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|",
        "|---|---|---|---|---|---|---|---|---|",
        _set_row,
    )
    return "\n".join(lines + commands_section(commands))


def _set_row(s: str, r: Dict) -> str:
    return (
        f"|{s}|{r['snt']}|{r['wrd']}|{r['corr']:.1f}|{r['sub']:.1f}|{r['del']:.1f}|{r['ins']:.1f}|"
        f"{r['err']:.1f}|{r['s_err']:.1f}|"
    )


def model_scores(model_dir: Path, test_sets: Sequence[str], decode_tag: str, data_dir: Path) -> Dict[str, Dict]:
    """{set: scores} of one model's decodings, and "_params": its parameter count."""
    model, config = load_model(model_dir)
    scores = score_model(model_dir, test_sets, decode_tag, data_dir, model_tokenizer(model_dir, config))
    scores["_params"] = count_params(model)
    return scores
