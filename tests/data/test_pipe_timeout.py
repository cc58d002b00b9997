"""wav.scp pipe commands run under a time limit: a hung one is killed with its whole process group and
its utterance fails, named, with how to raise the limit; validation runs pipes too (--check_audio)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cald_asr.data.audio import AudioError, load_audio, pipe_timeout_s
from cald_asr.data.dataset import ASRDataset
from cald_asr.data.validate import validate_data_dir

from datalayer_util import YESNO, write_yesno_dir, yesno_names

UTILS = Path(__file__).resolve().parents[2] / "utils"
HOW = (
    "raise the limit with the environment variable CALD_ASR_PIPE_TIMEOUT=<seconds> (default 300) or "
    "validate_data_dir --pipe_timeout"
)


def live_members(pgid: int):
    """Processes of group `pgid` that have not exited (zombies waiting to be reaped do not count)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(p.name))
    return out


def hung_pipe(tmp_path, wav):
    """A pipe whose shell writes its pid (= its process group, as it leads its own session), then hangs."""
    pidfile = tmp_path / "pgid"
    return f"echo $$ > {pidfile}; sleep 30; cat {wav} |", pidfile


def test_hung_pipe_is_killed_with_its_process_group(tmp_path):
    wav = YESNO / f"{yesno_names(1)[0]}.wav"
    spec, pidfile = hung_pipe(tmp_path, wav)
    t0 = time.monotonic()
    with pytest.raises(AudioError) as e:
        load_audio(spec, pipe_timeout=1)
    assert time.monotonic() - t0 < 5
    assert str(e.value) == (
        f"pipe 'echo $$ > {pidfile}; sleep 30; cat {wav} |': timed out after 1 s and was "
        f"killed with its child processes; {HOW}"
    )
    pgid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_members(pgid) == [], "the 'sleep 30' child of the shell survived"


def test_limit_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CALD_ASR_PIPE_TIMEOUT", "0.5")
    assert pipe_timeout_s() == 0.5 and pipe_timeout_s(7) == 7.0
    monkeypatch.delenv("CALD_ASR_PIPE_TIMEOUT")
    assert pipe_timeout_s() == 300.0
    monkeypatch.setenv("CALD_ASR_PIPE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"CALD_ASR_PIPE_TIMEOUT='soon' is not a number of seconds"):
        pipe_timeout_s()
    with pytest.raises(ValueError, match=r"pipe_timeout=0: the pipe timeout must be a positive number"):
        pipe_timeout_s(0)

    monkeypatch.setenv("CALD_ASR_PIPE_TIMEOUT", "1")
    d = tmp_path / "in"
    names = yesno_names(2)
    spec, _ = hung_pipe(tmp_path, YESNO / f"{names[1]}.wav")
    write_yesno_dir(d, 2, {f"yesno_{names[1]}": spec})
    t0 = time.monotonic()
    with pytest.raises(AudioError) as e:
        ASRDataset(d)  # utt2num_samples is absent: the lengths are measured, which runs the pipe
    assert time.monotonic() - t0 < 5
    assert str(e.value).startswith(f"utterance 'yesno_{names[1]}': pipe 'echo $$ > ")
    assert str(e.value).endswith(f"timed out after 1 s and was killed with its child processes; {HOW}")


def test_validation_runs_pipes_under_the_limit(tmp_path):
    names = yesno_names(3)
    wav = YESNO / f"{names[1]}.wav"
    spec, pidfile = hung_pipe(tmp_path, wav)
    d = tmp_path / "in"
    write_yesno_dir(d, 3, {f"yesno_{names[0]}": f"cat {YESNO / f'{names[0]}.wav'} |", f"yesno_{names[1]}": spec})
    assert validate_data_dir(d) == []  # nothing runs without check_audio
    assert not pidfile.exists()
    t0 = time.monotonic()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["bash", str(UTILS / "validate_data_dir.sh"), "--check_audio", "--pipe_timeout", "1", str(d)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert time.monotonic() - t0 < 20
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        f"{d / 'wav.scp'}:2: 'yesno_{names[1]}': pipe 'echo $$ > {pidfile}; sleep 30; cat {wav} |': timed out "
        f"after 1 s and was killed with its child processes; {HOW}"
    ]


def test_a_bad_limit_in_the_environment_is_one_error_line(tmp_path):
    names = yesno_names(2)
    d = tmp_path / "in"
    write_yesno_dir(d, 2, {f"yesno_{names[0]}": f"cat {YESNO / f'{names[0]}.wav'} |"})
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "CALD_ASR_PIPE_TIMEOUT": "soon"}
    r = subprocess.run(
        ["bash", str(UTILS / "validate_data_dir.sh"), "--check_audio", str(d)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 1
    assert r.stderr.strip() == "ERROR: CALD_ASR_PIPE_TIMEOUT='soon' is not a number of seconds"
