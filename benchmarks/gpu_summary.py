"""The numbers of benchmarks/gpu_check.sh, read off its runs' train.log lines and the encoder benchmark:
steps/s, frames/s, the share of step time spent waiting for data and the GPU memory peak of each training
run (its last log line: the rate counts the whole run, the wait share its last log interval), and the
encoder benchmark's speed-ups. Writes summary.json and prints a markdown table.

    python benchmarks/gpu_summary.py --out DIR NAME=TRAIN_DIR ... [--encoders encoders.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, Optional

LINE = re.compile(
    r"step (?P<step>\d+)/(?P<max>\d+) .*\| (?P<steps_s>[\d.]+) steps/s, (?P<frames_s>\d+) frames/s, "
    r"data wait (?P<wait>[\d.]+) %, ETA [\d.]+ min(?:, GPU memory peak (?P<mem>[\d.]+) GiB)?"
)


def train_numbers(run_dir: Path) -> Optional[Dict[str, float]]:
    """The last progress line of run_dir/train.log, or None when the run logged none."""
    log = run_dir / "train.log"
    if not log.is_file():
        return None
    last = None
    for line in log.read_text(errors="replace").splitlines():
        m = LINE.search(line)
        if m:
            last = m
    if last is None:
        return None
    out = {
        "steps": int(last["step"]),
        "max_steps": int(last["max"]),
        "steps_per_s": float(last["steps_s"]),
        "frames_per_s": float(last["frames_s"]),
        "data_wait_percent": float(last["wait"]),
    }
    if last["mem"] is not None:
        out["gpu_memory_peak_gib"] = float(last["mem"])
    out["finished"] = (run_dir / ".done").is_file()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--encoders", help="encoders.json of benchmarks/encoders.py")
    ap.add_argument("runs", nargs="*", help="NAME=TRAIN_DIR")
    args = ap.parse_args(argv)
    summary: Dict[str, object] = {"training": {}}
    rows = ["| run | steps | steps/s | frames/s | data wait % | GPU memory peak GiB |"]
    rows.append("|---|---:|---:|---:|---:|---:|")
    for spec in args.runs:
        name, _, where = spec.partition("=")
        nums = train_numbers(Path(where))
        summary["training"][name] = nums
        if nums is None:
            rows.append(f"| {name} | no progress line in {where}/train.log | | | | |")
            continue
        mem = nums.get("gpu_memory_peak_gib", "-")
        rows.append(
            f"| {name} | {nums['steps']}/{nums['max_steps']} | {nums['steps_per_s']:.2f} | "
            f"{nums['frames_per_s']:.0f} | {nums['data_wait_percent']:.1f} | {mem} |"
        )
    if args.encoders and Path(args.encoders).is_file():
        summary["encoders"] = json.loads(Path(args.encoders).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
