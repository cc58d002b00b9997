"""Merge the outputs of parallel asr_inference jobs (one per --key_file part) into one decode dir:
<n>best_recog/* and failed are concatenated and sorted by key; rtf adds up seconds and utterances."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from cald_asr.data.kaldi_dir import read_kv, write_kv


def merge(parts: Sequence[Path], out: Path) -> Dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    recog_dirs = sorted({d.name for p in parts for d in p.glob("*best_recog") if d.is_dir()})
    for name in recog_dirs:
        files = sorted({f.name for p in parts for f in (p / name).glob("*") if f.is_file()})
        for f in files:
            merged: Dict[str, str] = {}
            for p in parts:
                if (p / name / f).is_file():
                    merged.update(read_kv(p / name / f, allow_empty_value=True))
            write_kv(out / name / f, merged)
    failed: Dict[str, str] = {}
    totals = {"utterances": 0.0, "failed": 0.0, "audio_seconds": 0.0, "decode_seconds": 0.0}
    for p in parts:
        if (p / "failed").is_file():
            failed.update(read_kv(p / "failed", allow_empty_value=True))
        if (p / "rtf").is_file():
            r = read_kv(p / "rtf")
            for k in totals:
                totals[k] += float(r.get(k, 0.0))
    write_kv(out / "failed", failed)
    totals["rtf"] = totals["decode_seconds"] / totals["audio_seconds"] if totals["audio_seconds"] else float("nan")
    write_kv(out / "rtf", {k: (int(v) if k in ("utterances", "failed") else f"{v:.4f}") for k, v in totals.items()})
    return totals


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output_dir", required=True)
    p.add_argument("parts", nargs="+")
    args = p.parse_args(argv)
    totals = merge([Path(x) for x in args.parts], Path(args.output_dir))
    print(f"merge_decodes: {args.output_dir}: {int(totals['utterances'])} utterances, {int(totals['failed'])} "
          f"failed, RTF {totals['rtf']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
