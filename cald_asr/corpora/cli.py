"""The command line the corpus modules share: `python -m cald_asr.corpora.<corpus> --corpus_dir DIR --data_dir
data [its own options]` runs the module's prepare function. A problem in the corpus' own files (CorpusError)
is printed as one `error: <file>: <message>` line with exit status 1: a traceback would tell the user nothing more.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence, Tuple, Type

from cald_asr.corpora.data_set import CorpusError


def corpus_parser(doc: str, corpus_dir_help: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the module's `doc`, with --corpus_dir and --data_dir."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--corpus_dir", "--corpus-dir", required=True, help=corpus_dir_help)
    p.add_argument("--data_dir", "--data-dir", required=True, help="where data/<set>/ are written")
    return p


def run_main(
    parser: argparse.ArgumentParser,
    argv: Optional[Sequence[str]],
    action: Callable[[argparse.Namespace], object],
    errors: Tuple[Type[Exception], ...] = (CorpusError,),
) -> int:
    """Run `action` on the options parsed from `argv`: 0, or 1 after printing one of `errors`."""
    args = parser.parse_args(argv)
    try:
        action(args)
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
