"""A rank that dies under torchrun (SIGKILL, as the kernel's out-of-memory killer sends it) ends the run:
the other rank does not hang in its next all-reduce, torchrun exits non-zero within a timeout and names the
dead rank."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from train_helpers import std_args, subprocess_env

LIMIT_S = 90  # torchrun's agent notices a dead worker within seconds; the collectives' own bound is dist_timeout_s


def pids_with(tag: str, rank: str):
    """Processes whose environment holds CALD_TEST_TAG=tag and RANK=rank (torchrun's workers inherit the tag)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = dict(kv.split("=", 1) for kv in (d / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError):
            continue
        if env.get("CALD_TEST_TAG") == tag and env.get("RANK") == rank:
            found.append(int(d.name))
    return found


def test_a_killed_rank_ends_the_run_naming_it(yesno, tmp_path):
    out, tag = tmp_path / "run", uuid.uuid4().hex
    args = std_args(yesno, out, "--max_steps", 100000, "--valid_every", 100000, "--nproc", 2, "--dist_timeout_s", 60)
    env = {**subprocess_env(), "CALD_TEST_TAG": tag}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cald_asr.bin.asr_train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.time() + LIMIT_S
        log = out / "train.log"
        while not (log.is_file() and "step 3/" in log.read_text()):  # both ranks are in the training loop
            assert proc.poll() is None and time.time() < deadline, "the run did not start training"
            time.sleep(0.5)
        victims = pids_with(tag, "1")
        assert len(victims) == 1, victims
        os.kill(victims[0], signal.SIGKILL)
        t0 = time.time()
        text, _ = proc.communicate(timeout=LIMIT_S)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in pids_with(tag, "0") + pids_with(tag, "1"):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "rank      : 1 (local_rank: 1)" in text and "Signal 9 (SIGKILL)" in text, text[-3000:]
    assert not pids_with(tag, "0"), "rank 0 outlived the run"
    print(f"the run ended {took:.1f} s after rank 1 was killed")
