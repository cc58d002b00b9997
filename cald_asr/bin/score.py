"""Score a decoding against the references: sclite-style WER (or CER) report.

    python -m cald_asr.bin.score --ref data/test/text --hyp exp/m/decode/test/1best_recog/text \\
        --output_dir exp/m/decode/test/score_wer [--utt2spk data/test/utt2spk]
    python -m cald_asr.bin.score ... --cer --output_dir exp/m/decode/test/score_cer

Writes <output_dir>/ref.trn, hyp.trn (`<transcript> (<spk>-<utt-id>)`) and result.txt (SYSTEM SUMMARY
table per speaker and Sum/Avg: # Snt, # Wrd, Corr, Sub, Del, Ins, Err, S.Err; then every utterance's
alignment). Speakers come from --utt2spk, else from the utterance id up to its first '-'.
A reference utterance with no hypothesis counts as all deletions and is listed; hypotheses with no
reference are listed and not scored. Prints one summary line. Exit status 0, or 2 on unusable input.
With --config (the model's config.yaml or model dir), reference symbols outside the model's token list
(it can never output them) are counted and named in a warning; the scores are unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from cald_asr.models.model_file import CONFIG_NAME, read_config
from cald_asr.scoring import score_files
from cald_asr.text import tokenizer_from_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--ref", required=True, help="Kaldi text file of references")
    p.add_argument("--hyp", required=True, help="Kaldi text file of hypotheses (1best_recog/text)")
    p.add_argument("--output_dir", "--output-dir", required=True)
    p.add_argument("--utt2spk", default=None, help="speaker of each utterance (default: id prefix before '-')")
    p.add_argument("--cer", action="store_true", help="score characters (space = <space>) instead of words")
    p.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    p.add_argument(
        "--config",
        default=None,
        help="the model's config.yaml (or model dir): warn about reference symbols outside its token list",
    )
    p.add_argument("--bpemodel", default=None, help="with --config: the bpe.model, if not where the config says")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        tokenizer = None
        if args.config is not None:
            config = Path(args.config) / CONFIG_NAME if Path(args.config).is_dir() else Path(args.config)
            tokenizer = tokenizer_from_config(read_config(config), args.bpemodel, source=str(config))
        res = score_files(
            args.ref, args.hyp, cer=args.cer, utt2spk=args.utt2spk, output_dir=args.output_dir, tokenizer=tokenizer
        )
    except (ValueError, OSError) as e:  # DataDirError, ModelFileError and TokenListError are ValueErrors
        print(f"score: error: {e}", file=sys.stderr)
        return 2
    if res["snt"] == 0:
        print(f"score: error: {args.ref} holds no utterances", file=sys.stderr)
        return 2
    name = "CER" if args.cer else "WER"
    for w in res.get("warnings", []):
        print(f"score: warning: {w}", file=sys.stderr)
    for utt in res["missing"]:
        print(f"score: warning: no hypothesis for '{utt}' (counted as deletions)", file=sys.stderr)
    if res["extra"]:
        print(
            f"score: warning: {len(res['extra'])} hypothesis(es) have no reference and are not scored, "
            f"e.g. '{res['extra'][0]}'",
            file=sys.stderr,
        )
    print(
        f"score: {name} {res['err']:.2f}% (Sub {res['n_sub']}, Del {res['n_del']}, Ins {res['n_ins']} of "
        f"{res['wrd']} {res['unit']}s; S.Err {res['s_err']:.2f}% of {res['snt']} utterances) -> "
        f"{args.output_dir}/result.txt"
    )
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
