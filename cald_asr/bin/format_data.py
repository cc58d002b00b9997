"""Recipe stage 2: format a data dir into a dump dir (resampled 16-bit wavs, or copied features).

    python -m cald_asr.bin.format_data --in_dir data/<set> --out_dir dump/<set> [--fs 16000]
        [--min_sec 0.1] [--max_sec 30] [--filter] [--nj 2] [--frame_shift_ms 10] [--no_text] [--force]
        [--speed_perturb_factors "0.9 1.0 1.1"]

Broken audio (unreadable, empty, NaN or inf samples, a pipe that fails or runs past $CALD_ASR_PIPE_TIMEOUT)
or features, and empty transcripts are dropped and listed in <out_dir>/dropped.log, with
or without --filter, since either would make the output dir invalid; with --filter (training sets) so
are utterances shorter than --min_sec or longer than --max_sec.
With --no_text the input needs no transcripts (audio for task: layer_distillation): a dir with only wav.scp
(or wav.scp and segments) gives a dump without text, whose utt2spk/spk2utt map each utterance to itself
when the input has none; a text that is there is checked and copied as usual.
With --speed_perturb_factors (audio input; ESPnet's data/<train>_sp) the output holds one copy of every
utterance per factor, tempo and pitch scaled as sox `speed` does, its utterance and speaker ids prefixed
"sp<factor>-" (none for 1.0, the original), as Kaldi's utils/perturb_data_dir_speed.sh names them;
--filter applies to the perturbed lengths.
Exit status 0 if any utterance is left. A finished run leaves <out_dir>/.done; rerunning with the same
options and unchanged inputs does nothing unless --force.
"""

from __future__ import annotations

import argparse
import sys

from cald_asr.data.format_dir import FormatOptions, format_data_dir
from cald_asr.data.kaldi_dir import DataDirError


def get_parser() -> argparse.ArgumentParser:
    d = FormatOptions()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in_dir", "--in-dir", required=True)
    p.add_argument("--out_dir", "--out-dir", required=True)
    p.add_argument("--fs", type=int, default=d.fs, help="output sample rate (audio input)")
    p.add_argument("--min_sec", "--min-sec", type=float, default=d.min_sec)
    p.add_argument("--max_sec", "--max-sec", type=float, default=d.max_sec)
    p.add_argument(
        "--filter", action="store_true", help="drop utterances outside [--min_sec, --max_sec] (training sets)"
    )
    p.add_argument(
        "--frame_shift_ms",
        "--frame-shift-ms",
        type=float,
        default=d.frame_shift_ms,
        help="frame shift of feats.scp input, to apply --min_sec/--max_sec in frames",
    )
    p.add_argument("--nj", type=int, default=d.nj, help="parallel worker processes (audio input)")
    p.add_argument(
        "--input_type",
        "--input-type",
        choices=("auto", "wav", "feats"),
        default="auto",
        help="which input to format when a dir has both wav.scp and feats.scp (auto: wav.scp)",
    )
    p.add_argument(
        "--no_text",
        "--no-text",
        action="store_true",
        help="the input may have no text (nor utt2spk/spk2utt): audio only, for task: layer_distillation",
    )
    p.add_argument(
        "--speed_perturb_factors",
        "--speed-perturb-factors",
        default="",
        help='space-separated speed factors, e.g. "0.9 1.0 1.1": one copy of each utterance per factor',
    )
    p.add_argument("--force", action="store_true", help="redo even if <out_dir>/.done is up to date")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        opts = FormatOptions(
            fs=args.fs,
            min_sec=args.min_sec,
            max_sec=args.max_sec,
            filter=args.filter,
            frame_shift_ms=args.frame_shift_ms,
            nj=args.nj,
            speed_perturb_factors=_factors(args.speed_perturb_factors),
        )
        result = format_data_dir(
            args.in_dir, args.out_dir, opts, force=args.force, input_type=args.input_type, no_text=args.no_text
        )
    except (DataDirError, ValueError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    print(result.summary(args.in_dir, args.out_dir))
    return 0


def _factors(value: str) -> tuple:
    try:
        return tuple(float(f) for f in value.split())
    except ValueError:
        raise ValueError(f"--speed_perturb_factors must be numbers separated by spaces, not '{value}'") from None


if __name__ == "__main__":
    sys.exit(main())
