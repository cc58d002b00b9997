"""Hold out a dev set of whole speakers from a data dir (Kaldi's subset_data_dir_tr_cv.sh), deterministically.

    python -m cald_asr.bin.split_dev (--dev_speakers N | --dev_share F) [--seed S] SRC TRAIN_OUT DEV_OUT
    utils/split_dev.sh --dev_share 0.1 data/train data/train_nodev data/train_dev

The speakers of SRC are shuffled with --seed (default 0); --dev_speakers N holds out the first N, --dev_share F
the fewest whose utterances come nearest F of the set's (at least one speaker, and at least one stays). Where
speakers are unknown (utt2spk maps each utterance to itself) that holds out utterances. Every file keyed by
utterance is split, spk2utt written anew; an existing TRAIN_OUT or DEV_OUT data dir is replaced.
See cald_asr/corpora/dev_split.py. Exit status: 0, or 1 after one `error:` line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from cald_asr.corpora.data_set import CorpusError
from cald_asr.corpora.dev_split import split_dev

SHOWN_SPEAKERS = 10  # the held-out speakers named in the summary line


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="the data dir to split, e.g. data/train")
    p.add_argument("train_out", help="the speakers kept for training, e.g. data/train_nodev")
    p.add_argument("dev_out", help="the speakers held out, e.g. data/train_dev")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--dev_speakers", "--dev-speakers", type=int, help="hold out this many speakers")
    how.add_argument("--dev_share", "--dev-share", type=float, help="hold out about this share of the utterances")
    p.add_argument("--seed", type=int, default=0, help="shuffles the speakers (default 0)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        r = split_dev(args.src, args.train_out, args.dev_out, args.dev_speakers, args.dev_share, args.seed)
    except CorpusError as e:
        print(f"split_dev: error: {e}", file=sys.stderr)
        return 1
    shown = " ".join(r.dev_speakers[:SHOWN_SPEAKERS]) + (" ..." if len(r.dev_speakers) > SHOWN_SPEAKERS else "")
    print(
        f"split_dev: {args.src} -> {args.train_out} ({r.train_utts} utts, {r.train_speakers} spk), "
        f"{args.dev_out} ({r.dev_utts} utts, {len(r.dev_speakers)} spk: {shown})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
