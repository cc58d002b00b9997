"""Recipe stage 3: build the token list (and the sentencepiece model for bpe) from training transcripts.

    python -m cald_asr.bin.make_token_list --token_type char|bpe [--nbpe N] --text data/train/text \
        --output_dir data/token_list/<type> [--bpe_model_type unigram|bpe] [--no_sos_eos] [--force]

Writes <output_dir>/tokens.txt (`<blank>`, `<unk>`, tokens..., `<sos/eos>`) and, for bpe, bpe.model.
Existing outputs newer than the text and made with the same options are reused unless --force.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from cald_asr.data.kaldi_dir import DataDirError, read_kv
from cald_asr.text import CharTokenizer, SentencePieceTokenizer, TokenList, train_sentencepiece

STAMP = ".make_token_list.json"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--token_type", "--token-type", choices=("char", "bpe"), required=True)
    p.add_argument("--nbpe", type=int, default=30, help="sentencepiece vocabulary size, <unk> included (bpe)")
    p.add_argument(
        "--bpe_model_type",
        "--bpe-model-type",
        "--bpemode",
        dest="bpe_model_type",
        choices=("unigram", "bpe"),
        default="unigram",
        help="sentencepiece model type",
    )
    p.add_argument("--text", required=True, type=Path, help="Kaldi text file: '<utt-id> <transcript>' lines")
    p.add_argument("--output_dir", "--output-dir", required=True, type=Path)
    p.add_argument("--no_sos_eos", "--no-sos-eos", action="store_true", help="do not append <sos/eos>")
    p.add_argument("--force", action="store_true", help="rebuild even if the outputs are up to date")
    return p


def outputs_of(args) -> list:
    return [args.output_dir / "tokens.txt"] + ([args.output_dir / "bpe.model"] if args.token_type == "bpe" else [])


def _options(args) -> dict:
    opts = {"token_type": args.token_type, "text": str(args.text.absolute()), "sos_eos": not args.no_sos_eos}
    if args.token_type == "bpe":
        opts.update(nbpe=args.nbpe, bpe_model_type=args.bpe_model_type)
    return opts


def up_to_date(args) -> bool:
    stamp = args.output_dir / STAMP
    if not stamp.exists() or not all(p.exists() for p in outputs_of(args)):
        return False
    try:
        if json.loads(stamp.read_text(encoding="utf-8")) != _options(args):
            return False
    except json.JSONDecodeError:
        return False
    text_mtime = args.text.stat().st_mtime
    return all(p.stat().st_mtime > text_mtime for p in outputs_of(args))


def build(args) -> TokenList:
    transcripts = [t for t in read_kv(args.text, allow_empty_value=True).values() if t.strip()]
    if not transcripts:
        raise DataDirError(f"{args.text}: no non-empty transcript")
    add = not args.no_sos_eos
    if args.token_type == "char":
        counts = Counter(tok for t in transcripts for tok in CharTokenizer().text2tokens(t))
        # Most frequent first (ESPnet's order); ties in code-point order so the list is reproducible.
        token_list = TokenList.build(sorted(counts, key=lambda tok: (-counts[tok], tok)), add_sos_eos=add)
    else:
        model = train_sentencepiece(transcripts, args.output_dir / "bpe", args.nbpe, model_type=args.bpe_model_type)
        token_list = TokenList.build(SentencePieceTokenizer(model).pieces(), add_sos_eos=add)
    token_list.save(args.output_dir / "tokens.txt")
    (args.output_dir / STAMP).write_text(json.dumps(_options(args), sort_keys=True) + "\n", encoding="utf-8")
    return token_list


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    if not args.text.is_file():
        print(f"ERROR: {args.text}: no such file", file=sys.stderr)
        return 1
    if not args.force and up_to_date(args):
        print(f"make_token_list: reusing {args.output_dir / 'tokens.txt'} (newer than {args.text}; --force to redo)")
        return 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    try:
        token_list = build(args)
    except (DataDirError, ValueError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    print(f"make_token_list: wrote {args.output_dir / 'tokens.txt'} ({len(token_list)} tokens, {args.token_type})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
