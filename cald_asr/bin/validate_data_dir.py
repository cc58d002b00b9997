"""Check a Kaldi data directory; optionally fix it by dropping the bad utterances.

    python -m cald_asr.bin.validate_data_dir DATA_DIR [--check_audio [--fs HZ] [--pipe_timeout S]]
        [--no_text] [--fix --log FILE]

--check_audio decodes every audio entry once (pipe commands in wav.scp run, as shell commands of the
user, each under --pipe_timeout) and reads every feature matrix: it reports unreadable, empty or
non-finite (NaN/inf) audio, sample rates other than --fs (default: the most common rate) and feature
dimensions other than the most common one.

--no_text (as in Kaldi's validate_data_dir.sh) accepts a dir without transcripts, e.g. only wav.scp (or
wav.scp and segments) for task: layer_distillation: `text` is not required, nor are utt2spk and spk2utt
(each utterance is then its own speaker). What is there is checked as always.

Warnings (printed as `WARNING: ...` on stderr) leave the dir valid: utterance ids that do not begin with their
speaker id (Kaldi's rule) are counted and the first ones named.

Exit status: 0 if the dir is valid (or was fixed and still holds utterances), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cald_asr.data.audio import DEFAULT_PIPE_TIMEOUT_S, PIPE_TIMEOUT_ENV
from cald_asr.data.kaldi_dir import DataDirError
from cald_asr.data.validate import fix_inspected, inspect_data_dir, validate_data_dir


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"'{text}' must be positive")
        return value

    return parse


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", type=Path)
    p.add_argument(
        "--check_audio",
        "--check-audio",
        action="store_true",
        help="also decode every audio entry (running pipe commands) and read every feature matrix",
    )
    p.add_argument(
        "--fs",
        type=_positive(int),
        default=None,
        help="with --check_audio: the sample rate every recording must have (default: the most common)",
    )
    p.add_argument(
        "--pipe_timeout",
        "--pipe-timeout",
        type=_positive(float),
        default=None,
        help=f"with --check_audio: seconds one pipe command may run (default ${PIPE_TIMEOUT_ENV}, "
        f"else {DEFAULT_PIPE_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--no_text",
        "--no-text",
        action="store_true",
        help="text is not required, nor utt2spk/spk2utt (audio without transcripts, task: layer_distillation)",
    )
    p.add_argument("--fix", action="store_true", help="drop bad utterances from all files (originals in .backup/)")
    p.add_argument(
        "--log",
        type=Path,
        default=None,
        help="with --fix: where to list the dropped utterances (default DATA_DIR/fix_data_dir.log)",
    )
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        ins = inspect_data_dir(args.data_dir, args.check_audio, args.fs, args.pipe_timeout, args.no_text)
    except ValueError as e:  # a bad $CALD_ASR_PIPE_TIMEOUT
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    for w in ins.warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    problems = [str(p) for p in ins.problems]
    for p in problems:
        print(p)
    if not problems:
        print(f"{args.data_dir}: OK", file=sys.stderr)
        return 0
    print(f"{args.data_dir}: {len(problems)} problem(s)", file=sys.stderr)
    if not args.fix:
        return 1
    log = args.log or args.data_dir / "fix_data_dir.log"
    try:
        dropped = fix_inspected(ins, log)
    except DataDirError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    # The audio is not decoded again: every audio problem implicated utterances that are now dropped, and the
    # ones kept share the rate (and feature dimension) that the others were compared with.
    remaining = validate_data_dir(args.data_dir, no_text=args.no_text)
    for p in remaining:
        print(f"still: {p}", file=sys.stderr)
    print(f"{args.data_dir}: fixed, dropped {len(dropped)} utterance(s), log in {log}", file=sys.stderr)
    return 1 if remaining else 0


if __name__ == "__main__":
    sys.exit(main())
