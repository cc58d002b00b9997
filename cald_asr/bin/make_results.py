"""Stage 8's report: score every decoded test set and write the recipe's RESULTS.md.

    python -m cald_asr.bin.make_results --models "exp/asr_x/best exp/cald_target_y/best" \
        --test_sets "test test_long" --decode_tag decode_default --data_dir dump --output RESULTS.md

Reads <model>/<decode_tag>/<set>/1best_recog/text and rtf, writes <...>/<set>/score_wer/{ref.trn,hyp.trn,
result.txt,result.json}, warns about reference symbols outside each model's token list (counted in
result.json as ref_unknown), then RESULTS.md: an environment header (date, versions, git commit), one table of
model x test set (WER, real-time factor, parameters), a sclite-style table per model, and the commands
that produced them.

Text classification (--task cls) reads <model>/<decode_tag>/<set>/{label,timing} from cls_inference and
the references <data_dir>/<set>/label, writes <...>/<set>/score_acc/result.json, and reports accuracy,
macro-F1, time per example and parameters per model and set, after a description of the data sets
(--train_set, --valid_set: sizes, and how a subset was drawn).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cald_asr.convert import count_params
from cald_asr.data.kaldi_dir import read_kv
from cald_asr.models.model_file import load_model
from cald_asr.scoring import score_files
from cald_asr.text import Tokenizer, tokenizer_from_config


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit(cwd: Path) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_name(model_dir: Path) -> str:
    return f"{model_dir.parent.name}/{model_dir.name}"


def model_tokenizer(model_dir: Path, config: Dict) -> Optional[Tokenizer]:
    """The model's tokenizer, to check the references against its token list; None (with a warning) if its
    bpe model is not at hand, since the scores do not need it."""
    try:
        return tokenizer_from_config(config, source=str(model_dir / "config.yaml"))
    except ValueError as e:
        print(f"make_results: warning: {e}; references not checked against the token list", file=sys.stderr)
        return None


def score_model(model_dir: Path, test_sets: Sequence[str], decode_tag: str, data_dir: Path,
                tokenizer: Optional[Tokenizer] = None) -> Dict[str, Dict]:
    out = {}
    for s in test_sets:
        dec = model_dir / decode_tag / s
        hyp = dec / "1best_recog" / "text"
        if not hyp.is_file():
            continue
        res = score_files(data_dir / s / "text", hyp, output_dir=dec / "score_wer",
                          utt2spk=data_dir / s / "utt2spk" if (data_dir / s / "utt2spk").is_file() else None,
                          tokenizer=tokenizer)
        for w in res.get("warnings", []):
            print(f"make_results: warning: {model_name(model_dir)}: {w}", file=sys.stderr)
        rtf_file = dec / "rtf"
        res["rtf"] = float(read_kv(rtf_file)["rtf"]) if rtf_file.is_file() else float("nan")
        failed = dec / "failed"
        res["failed_utts"] = sum(1 for line in failed.open() if line.strip()) if failed.is_file() else 0
        (dec / "score_wer" / "result.json").write_text(json.dumps(res, indent=1, default=str))
        out[s] = res
    return out


def env_header(recipe_dir: Path) -> List[str]:
    return [f"# RESULTS: {recipe_dir.resolve().parent.name}/{recipe_dir.resolve().name}", "",
            "## Environment", "",
            f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- python {platform.python_version()}, torch {_version('torch')}, transformers "
            f"{_version('transformers')}, espnet {_version('espnet')}, cald-asr {_version('cald-asr')}",
            f"- git commit: {_git_commit(recipe_dir)}",
            f"- machine: {platform.machine()}, {platform.processor() or 'cpu'}", ""]


def render(models: List[Path], scores: Dict[str, Dict[str, Dict]], test_sets: Sequence[str], commands: List[str],
           recipe_dir: Path) -> str:
    lines = env_header(recipe_dir) + [
             "## WER (%) / real-time factor of decoding / parameters", "",
             "| model | mixer | params | " + " | ".join(f"{s} WER | {s} RTF" for s in test_sets) + " |",
             "|---|---|---:|" + "---:|---:|" * len(test_sets)]
    for m in models:
        _, config = load_model(m)
        row = [model_name(m), config.get("mixer") or "attention", f"{scores[str(m)]['_params']:,}"]
        for s in test_sets:
            r = scores[str(m)].get(s)
            row += [f"{r['err']:.2f}", f"{r['rtf']:.4f}"] if r else ["-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for m in models:
        lines += [f"### {model_name(m)}", "", "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|",
                  "|---|---|---|---|---|---|---|---|---|"]
        for s in test_sets:
            r = scores[str(m)].get(s)
            if r:
                lines.append(f"|{s}|{r['snt']}|{r['wrd']}|{r['corr']:.1f}|{r['sub']:.1f}|{r['del']:.1f}|"
                             f"{r['ins']:.1f}|{r['err']:.1f}|{r['s_err']:.1f}|")
        lines.append("")
    lines += ["## Commands", "", "```bash", *commands, "```", ""]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", required=True, help="space-separated model dirs (config.yaml + model.safetensors)")
    p.add_argument("--test_sets", required=True)
    p.add_argument("--decode_tag", required=True)
    p.add_argument("--data_dir", required=True, help="where <set>/text are (the dump dir)")
    p.add_argument("--commands", default=None, help="file of the commands that produced the results")
    p.add_argument("--output", default="RESULTS.md")
    p.add_argument("--task", choices=("asr", "cls"), default="asr", help="cls: text classification")
    p.add_argument("--train_set", default=None, help="cls: the training set, described in the report")
    p.add_argument("--valid_set", default=None, help="cls: the dev set used to pick best/")
    args = p.parse_args(argv)
    models = [Path(m) for m in args.models.split()]
    if args.task == "cls":
        from cald_asr.bin.cls_results import make_cls_results

        return make_cls_results(args, models)
    test_sets = args.test_sets.split()
    scores: Dict[str, Dict] = {}
    for m in models:
        model, config = load_model(m)
        scores[str(m)] = score_model(m, test_sets, args.decode_tag, Path(args.data_dir), model_tokenizer(m, config))
        scores[str(m)]["_params"] = count_params(model)
        for s in test_sets:
            r = scores[str(m)].get(s)
            if r:
                print(f"make_results: {model_name(m)} {s}: WER {r['err']:.2f}% RTF {r['rtf']:.4f}")
    commands = Path(args.commands).read_text().splitlines() if args.commands and Path(args.commands).is_file() else []
    Path(args.output).write_text(render(models, scores, test_sets, commands, Path(args.output).parent))
    print(f"make_results: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
