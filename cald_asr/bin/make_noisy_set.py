"""Recipe stage 7: noisy copies of a formatted test set, for robustness evaluation.

    python -m cald_asr.bin.make_noisy_set --in_dir dump/<set> --snr_db 20 10 5 [--seed 0] [--force]

writes dump/<set>_snr20/, dump/<set>_snr10/, dump/<set>_snr5/ (the SNR as written; --out_dir DIR instead,
with one --snr_db): the same utterances, transcripts and speakers, each utterance's audio with white Gaussian
noise mixed in at exactly that SNR (powers over the utterance), the noise seeded by --seed and the utterance
id, so that a rerun writes the same bytes (cald_asr/data/noisy_dir.py). A finished copy leaves .done;
rerunning with the same options and an unchanged input does nothing unless --force.
Exit status 0 when every copy is written; 1, naming the utterance, when one cannot be read.
"""

from __future__ import annotations

import argparse
import sys

from cald_asr.data.kaldi_dir import DataDirError
from cald_asr.data.noisy_dir import check_snr, make_noisy_dir, noisy_name


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in_dir", "--in-dir", required=True, help="a formatted dir with audio (dump/<set>)")
    p.add_argument("--snr_db", "--snr-db", nargs="+", required=True, help="SNR(s) in dB, e.g. 20 10 5")
    p.add_argument("--out_dir", "--out-dir", default=None, help="where the copy goes (one --snr_db only)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (with each utterance id)")
    p.add_argument("--force", action="store_true", help="redo even if the outputs are up to date")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    snrs = [k for value in args.snr_db for k in value.split()]  # "20 10 5" as one word too, as the recipe passes
    try:
        for k in snrs:
            check_snr(k)
        if args.out_dir is not None and len(snrs) != 1:
            raise ValueError(f"--out_dir takes one --snr_db, not {len(snrs)} ({' '.join(snrs)})")
        for k in snrs:
            out_dir = args.out_dir or noisy_name(args.in_dir, k)
            result = make_noisy_dir(args.in_dir, out_dir, k, seed=args.seed, force=args.force)
            print(result.summary(args.in_dir, out_dir, k, args.seed))
    except (DataDirError, ValueError) as e:
        print(f"make_noisy_set: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
