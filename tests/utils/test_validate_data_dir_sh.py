"""utils/validate_data_dir.sh passes --check_audio, --fs and --pipe_timeout through to the validator."""

import os
import sys
from pathlib import Path

import pytest

from cald_asr.data.kaldi_dir import write_kv

from shared_data import SHARED_DATA

YESNO = SHARED_DATA / "yesno" / "waves_yesno"


@pytest.fixture
def yesno_dir(tmp_path):
    if not YESNO.is_dir():
        pytest.skip(f"shared corpus {YESNO} not present")
    names = sorted(p.stem for p in YESNO.glob("*.wav"))[:2]
    d = tmp_path / "yesno"
    write_kv(
        d / "wav.scp",
        {
            f"yesno_{names[0]}": str(YESNO / f"{names[0]}.wav"),
            f"yesno_{names[1]}": f"cat {YESNO / f'{names[1]}.wav'} |",
        },
    )
    write_kv(d / "text", {f"yesno_{n}": " ".join("YES" if c == "1" else "NO" for c in n.split("_")) for n in names})
    write_kv(d / "utt2spk", {f"yesno_{n}": "yesno" for n in names})
    write_kv(d / "spk2utt", {"yesno": " ".join(f"yesno_{n}" for n in names)})
    return d, names


def test_fs_and_pipe_timeout_options(run_bash, yesno_dir, monkeypatch):
    d, names = yesno_dir
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # its `python`
    r = run_bash('utils/validate_data_dir.sh --check_audio --fs 8000 --pipe_timeout 30 "$1"', [str(d)])
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = run_bash('utils/validate_data_dir.sh --check_audio --fs 16000 "$1"', [str(d)])
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"{d / 'wav.scp'}:{i + 1}: 'yesno_{n}': sample rate 8000 Hz, expected 16000 Hz (--fs)"
        for i, n in enumerate(names)
    ]
    r = run_bash('utils/validate_data_dir.sh --check_audio --pipe_timeout 0 "$1"', [str(d)])
    assert r.returncode == 2 and "argument --pipe_timeout/--pipe-timeout: '0' must be positive" in r.stderr
