"""Check a Kaldi data directory; optionally fix it by dropping the bad utterances.

    python -m cald_asr.bin.validate_data_dir DATA_DIR [--check_audio] [--fix --log FILE]

Exit status: 0 if the dir is valid (or was fixed and still holds utterances), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cald_asr.data.kaldi_dir import DataDirError
from cald_asr.data.validate import fix_data_dir, validate_data_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", type=Path)
    p.add_argument("--check_audio", "--check-audio", action="store_true",
                   help="also open every audio file / feature matrix (pipe commands are not run)")
    p.add_argument("--fix", action="store_true", help="drop bad utterances from all files (originals in .backup/)")
    p.add_argument("--log", type=Path, default=None,
                   help="with --fix: where to list the dropped utterances (default DATA_DIR/fix_data_dir.log)")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    problems = validate_data_dir(args.data_dir, check_audio=args.check_audio)
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
        dropped = fix_data_dir(args.data_dir, log, check_audio=args.check_audio)
    except DataDirError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    remaining = validate_data_dir(args.data_dir, check_audio=args.check_audio)
    for p in remaining:
        print(f"still: {p}", file=sys.stderr)
    print(f"{args.data_dir}: fixed, dropped {len(dropped)} utterance(s), log in {log}", file=sys.stderr)
    return 1 if remaining else 0


if __name__ == "__main__":
    sys.exit(main())
