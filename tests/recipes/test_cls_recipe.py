"""The SST-2 text recipe driven through run.sh on a tiny training slice (64 phrases, 2 steps per run),
all eight stages: data, tokenisation, labels, teacher, Std. run, two CALD students, evaluation of the
whole dev and test sets, RESULTS.md; a rerun skips every finished stage. Minutes: marked "recipe"."""

import re
import subprocess
from pathlib import Path

import pytest

from cald_asr.data.kaldi_dir import read_kv

from shared_data import SHARED_DATA

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "sst2" / "cls1"
TINY = [
    "--train_set",
    "train_64",
    "--local_data_opts",
    f"--corpus_dir {SHARED_DATA / 'sst2'} --train_size 64",
    "--cald_configs",
    "conf/cald/target.yaml conf/cald/unguided.yaml",
    "--train_args",
    "--max_steps 2 --valid_every 100 --snapshot_every 1 --max_batch_size 16 --batch_bins 1024",
    "--inference_args",
    "--batch_size 16",
]


def run(tmp_path, *args):
    d = {k: tmp_path / k for k in ("data", "dump", "exp")}
    cmd = [
        "./run.sh",
        "--datadir",
        str(d["data"]),
        "--dumpdir",
        str(d["dump"]),
        "--expdir",
        str(d["exp"]),
        "--results_file",
        str(tmp_path / "RESULTS.md"),
        *TINY,
        *args,
    ]
    return subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True), d


@pytest.mark.recipe
def test_sst2_end_to_end(tmp_path):
    if not (SHARED_DATA / "sst2" / "train.tsv").is_file():
        pytest.skip("SST-2 not present")
    r, d = run(tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(read_kv(d["dump"] / "train_64" / "token_ids")) == 64
    assert (d["data"] / "label_list" / "labels.txt").read_text().split() == ["negative", "positive"]
    runs = ["cls_teacher_minilm", "cald_target_linformer_k64", "cald_unguided_linformer_k64"]
    for name in runs:
        for s, n in (("dev", 872), ("test", 1821)):
            out = d["exp"] / name / "best" / "infer" / s
            assert len(read_kv(out / "label")) == n and read_kv(out / "failed", allow_empty_value=True) == {}
    assert len(list((d["exp"] / "cls_teacher_minilm" / "snapshots").glob("step_*"))) == 2
    results = (tmp_path / "RESULTS.md").read_text()
    for name in runs:
        row = re.search(
            rf"\| {name}/best \| [^|]+ \| [0-9,]+ \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", results
        )
        assert row, name
        assert 0 < float(row.group(1)) <= 100 and 0 < float(row.group(2)) <= 100
    assert "seeded random subset (seed 0) of 64 of the 67,349 SST-2 training phrases" in results
    assert "./run.sh --datadir" in results
    r, _ = run(tmp_path)
    assert r.returncode == 0
    assert "is complete, skipping" in r.stdout and "holds a finished run, skipping" in r.stdout
    assert r.stdout.count("is done, skipping") == 6
