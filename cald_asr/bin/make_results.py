"""Stage 8's report: score every decoded test set and write the recipe's RESULTS.md.

    python -m cald_asr.bin.make_results --models "exp/asr_x/best exp/cald_target_y/best" \
        --test_sets "test test_long" --decode_tag decode_default --data_dir dump --output RESULTS.md

Reads <model>/<decode_tag>/<set>/1best_recog/text and rtf, writes <...>/<set>/score_wer/{ref.trn,hyp.trn,
result.txt,result.json} (and score_cer/, characters), warns about reference symbols outside each model's
token list (counted in result.json as ref_unknown), then RESULTS.md: an environment header (date, versions,
git commit, machine), one table of model x test set (WER, CER, real-time factor, parameters), a sclite-style
table per model, and the commands
that produced them. With --robust_sets and --noise_snrs it also scores each robust set's noisy copies
<set>_snr<k> (stage 7's make_noisy_set) and adds, beside the clean table, a robustness table per set: model x
(clean, each SNR) WER with 95 % bootstrap intervals (--bootstrap_draws resamplings of the utterances,
--bootstrap_seed), and each model's WER over the teacher's (the first of --models) at each SNR.

Text classification (--task cls) reads <model>/<decode_tag>/<set>/{label,timing} from cls_inference and
the references <data_dir>/<set>/label, writes <...>/<set>/score_acc/result.json, and reports accuracy,
macro-F1, time per example and parameters per model and set, after a description of the data sets
(--train_set, --valid_set: sizes, and how a subset was drawn).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cald_asr.report import asr, classification, robustness
from cald_asr.report.sections import model_name
from cald_asr.scoring import bootstrap


def make_cls_results(args, models: List[Path]) -> int:
    """--task cls: score every model's classified sets (cald_asr.report.classification), write the report."""
    test_sets = args.test_sets.split()
    data_dir = Path(args.data_dir)
    scores: Dict[str, Dict] = {}
    for m in models:
        sc = scores[str(m)] = classification.model_scores(m, test_sets, args.decode_tag, data_dir)
        for s in test_sets:
            r = sc.get(s)
            if r:
                print(
                    f"make_results: {model_name(m)} {s}: accuracy {r['accuracy']:.2f}% macro-F1 "
                    f"{r['macro_f1']:.2f}% {1000 * r['seconds_per_example']:.1f} ms/example"
                )
    data_lines = classification.describe_sets(data_dir, args.train_set, args.valid_set, test_sets)
    Path(args.output).write_text(
        classification.render(models, scores, test_sets, commands_of(args), Path(args.output).parent, data_lines)
    )
    print(f"make_results: wrote {args.output}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", required=True, help="space-separated model dirs (config.yaml + model.safetensors)")
    p.add_argument("--test_sets", required=True)
    p.add_argument("--decode_tag", required=True)
    p.add_argument("--data_dir", required=True, help="where <set>/text are (the dump dir)")
    p.add_argument("--commands", default=None, help="file of the commands that produced the results")
    p.add_argument("--output", default="RESULTS.md")
    p.add_argument("--task", choices=("asr", "cls"), default="asr", help="cls: text classification")
    p.add_argument("--robust_sets", default="", help="asr: test sets whose noisy copies <set>_snr<k> are reported")
    p.add_argument("--noise_snrs", default="", help='asr: the SNRs (dB) of those copies, e.g. "20 10 5"')
    p.add_argument("--bootstrap_draws", type=int, default=bootstrap.DRAWS, help="asr: resamplings per interval")
    p.add_argument("--bootstrap_seed", type=int, default=bootstrap.SEED)
    p.add_argument("--train_set", default=None, help="cls: the training set, described in the report")
    p.add_argument("--valid_set", default=None, help="cls: the dev set used to pick best/")
    args = p.parse_args(argv)
    models = [Path(m) for m in args.models.split()]
    if args.task == "cls":
        return make_cls_results(args, models)
    return make_asr_results(args, models)


def commands_of(args) -> List[str]:
    return Path(args.commands).read_text().splitlines() if args.commands and Path(args.commands).is_file() else []


def make_asr_results(args, models: List[Path]) -> int:
    """Score every model's decoded test sets (cald_asr.report.asr), write the report."""
    test_sets = args.test_sets.split()
    robust_sets, snrs = args.robust_sets.split(), args.noise_snrs.split()
    if not snrs:
        robust_sets = []
    # every scored set once: the test sets, then the robust ones and their noisy copies
    sets = list(dict.fromkeys(test_sets + robust_sets + robustness.noisy_sets(robust_sets, snrs)))
    data_dir = Path(args.data_dir)
    scores: Dict[str, Dict] = {}
    for m in models:
        scores[str(m)] = asr.model_scores(m, sets, args.decode_tag, data_dir)
        for s in sets:
            r = scores[str(m)].get(s)
            if r:
                print(f"make_results: {model_name(m)} {s}: WER {r['err']:.2f}% CER {r['cer']:.2f}% RTF {r['rtf']:.4f}")
    draws, seed = args.bootstrap_draws, args.bootstrap_seed
    cells = robustness.robustness_cells(models, robust_sets, snrs, args.decode_tag, data_dir, draws, seed)
    section = robustness.robustness_section(models, cells, robust_sets, snrs, draws, seed)
    report = asr.render(models, scores, test_sets, commands_of(args), Path(args.output).parent, section, sets)
    Path(args.output).write_text(report)
    print(f"make_results: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
