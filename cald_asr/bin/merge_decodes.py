"""Merge the outputs of parallel asr_inference jobs (one per --key_file part) into one decode dir:
<n>best_recog/* and failed are concatenated and sorted by key; rtf adds up seconds and utterances; `text`
(beside them) is 1best_recog/text, the flat file ESPnet's scoring stage reads.

    merge_decodes.py --keys dump/test/wav.scp --output_dir exp/m/decode/test exp/m/decode/test/logdir/output.*

--keys (the set's scp, or any file whose first column lists the set) keeps only the utterances of the set
and requires each of them to be decoded or listed in a part's failed file: otherwise nothing is written
and the exit status is 1, naming the first missing ones. Parts must share one fingerprint (one model and
inference config, see cald_asr/decode/journal.py); it is copied into the output dir.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cald_asr.data.kaldi_dir import DataDirError, c_sort_key, read_kv, write_kv
from cald_asr.decode.journal import FINGERPRINT, read_fingerprint

PROG = "merge_decodes"


class MergeError(Exception):
    """The parts do not make one complete decode of the set."""


def read_values(path: Path) -> Dict[str, str]:
    """'key value' lines as the job wrote them: unlike read_kv, the value is kept verbatim (a hypothesis may
    begin with a space token), so the merged files equal the jobs' files line for line."""
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if line.strip():
                key, _, value = line.partition(" ")
                if key in out:
                    raise DataDirError(f"{path}:{line_no}: duplicate key '{key}'")
                out[key] = value
    return out


def check_fingerprints(parts: Sequence[Path]) -> Optional[Path]:
    """The part whose fingerprint all parts share (None when no part has one); MergeError if they differ."""
    seen: Dict[str, Path] = {}
    for p in parts:
        fp = read_fingerprint(p)
        if fp is not None:
            seen.setdefault(fp["sha1"], p)
    if len(seen) > 1:
        raise MergeError(
            "the parts were decoded with different models or inference configs: "
            + ", ".join(f"{p} ({sha[:12]})" for sha, p in seen.items())
        )
    return next(iter(seen.values()), None)


def merge(parts: Sequence[Path], out: Path, keys: Optional[List[str]] = None) -> Dict[str, float]:
    """Merge `parts` into `out`; with `keys`, only those utterances, each of them decoded or failed."""
    source = check_fingerprints(parts)
    recog_dirs = sorted({d.name for p in parts for d in p.glob("*best_recog") if d.is_dir()})
    merged: Dict[str, Dict[str, Dict[str, str]]] = {}
    for name in recog_dirs:
        files = sorted({f.name for p in parts for f in (p / name).glob("*") if f.is_file()})
        for f in files:
            merged.setdefault(name, {})[f] = {}
            for p in parts:
                if (p / name / f).is_file():
                    merged[name][f].update(read_values(p / name / f))
    failed: Dict[str, str] = {}
    totals = {"utterances": 0.0, "failed": 0.0, "audio_seconds": 0.0, "decode_seconds": 0.0}
    for p in parts:
        if (p / "failed").is_file():
            failed.update(read_kv(p / "failed", allow_empty_value=True))
        if (p / "rtf").is_file():
            r = read_kv(p / "rtf")
            for k in totals:
                totals[k] += float(r.get(k, 0.0))
    decoded = merged.get("1best_recog", {}).get("text", {})
    failed = {k: v for k, v in failed.items() if k not in decoded}  # a retry that succeeded wins
    ignored = 0
    if keys is not None:
        want = set(keys)
        missing = [k for k in keys if k not in decoded and k not in failed]
        if missing:
            raise MergeError(
                f"{len(missing)} utterance(s) of the set are neither decoded nor listed as failed "
                f"in the parts: {' '.join(sorted(missing, key=c_sort_key)[:5])}"
                f"{' ...' if len(missing) > 5 else ''}"
            )
        ignored = len(set(decoded) - want) + len(set(failed) - want)
        failed = {k: v for k, v in failed.items() if k in want}
        for name in merged:
            for f in merged[name]:
                merged[name][f] = {k: v for k, v in merged[name][f].items() if k in want}
    out.mkdir(parents=True, exist_ok=True)
    for name, files in merged.items():
        for f, values in files.items():
            write_kv(out / name / f, values)
    # the flat <dir>/text that ESPnet's scoring stage reads: the best hypothesis of each decoded utterance
    write_kv(out / "text", merged.get("1best_recog", {}).get("text", {}))
    write_kv(out / "failed", failed)
    if source is not None:
        shutil.copyfile(source / FINGERPRINT, out / FINGERPRINT)
    if keys is not None:  # counts of the set itself, not of whatever else the parts held
        totals["utterances"] = float(len(merged.get("1best_recog", {}).get("text", {})))
        totals["failed"] = float(len(failed))
    totals["rtf"] = totals["decode_seconds"] / totals["audio_seconds"] if totals["audio_seconds"] else float("nan")
    write_kv(out / "rtf", {k: (int(v) if k in ("utterances", "failed") else f"{v:.4f}") for k, v in totals.items()})
    totals["ignored"] = float(ignored)
    return totals


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--output_dir", required=True)
    p.add_argument("--keys", default=None, help="the set: utterance ids in the first column (e.g. its wav.scp)")
    p.add_argument("parts", nargs="+")
    args = p.parse_args(argv)
    try:
        keys = list(read_kv(args.keys, allow_empty_value=True)) if args.keys else None
        totals = merge([Path(x) for x in args.parts], Path(args.output_dir), keys)
    except (MergeError, DataDirError, OSError) as e:
        print(f"{PROG}: error: {args.output_dir}: {e}", file=sys.stderr)
        return 1
    extra = f", {int(totals['ignored'])} not in {args.keys} ignored" if totals["ignored"] else ""
    print(
        f"{PROG}: {args.output_dir}: {int(totals['utterances'])} utterances, {int(totals['failed'])} "
        f"failed, RTF {totals['rtf']:.4f}{extra}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
