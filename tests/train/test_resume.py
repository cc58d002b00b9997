"""Kill and resume: a run SIGKILLed mid-training and continued with --resume ends with the parameters of the
same run left alone, for the Std. run and for trajectory guidance (whose teacher and its optimiser live in
the checkpoint); and a checkpoint write that dies half-way never replaces the last good checkpoint."""

import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from cald_asr.bin import asr_train
from cald_asr.train.checkpoint import CHECKPOINT_NAME, load_checkpoint

from train_helpers import cald_args, max_abs_diff, read_step, state_of, std_args, subprocess_env

# SpecAugment draws from the global RNG every step: a resume is exact only if that state is restored too
STD = ["--max_steps", 12, "--checkpoint_every", 1, "--valid_every", 5, "--specaug", "true"]
TRAJECTORY = ["--max_steps", 10, "--checkpoint_every", 1, "--valid_every", 4, "--specaug", "true", "--update_every", 2]
TOL = 1e-6


def kill_at_step(argv, out, k):
    """Start asr_train, SIGKILL it once its checkpoint holds step >= k; -> the step it was killed at."""
    out.mkdir(parents=True)
    ckpt = out / CHECKPOINT_NAME
    with open(out.parent / f"{out.name}.console", "w") as console:
        p = subprocess.Popen(
            [sys.executable, "-m", "cald_asr.bin.asr_train", *map(str, argv)],
            stdout=console,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )
        try:
            deadline = time.monotonic() + 300
            while not (ckpt.is_file() and read_step(ckpt) >= k):
                assert p.poll() is None, f"run ended (rc {p.returncode}) before step {k}: see {console.name}"
                assert time.monotonic() < deadline, f"no checkpoint at step {k} in time: see {console.name}"
                time.sleep(0.02)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (out / "final").exists() and not (out / ".done").exists(), "killed before the end"
    return read_step(ckpt)


def leave_debris(out):
    """What an earlier kill during a checkpoint write may leave: torn temporary files beside the checkpoint."""
    good = (out / CHECKPOINT_NAME).read_bytes()
    (out / f".{CHECKPOINT_NAME}.tmp99999").write_bytes(good[: len(good) // 2])
    (out / f"{CHECKPOINT_NAME}.tmp").write_bytes(b"\0garbage")


def resumed_at(out):
    return [
        int(line.rsplit(" at step ", 1)[1].split()[0])
        for line in (out / "train.log").read_text().splitlines()
        if "resumed from" in line
    ]


def test_std_run_killed_and_resumed(yesno, tmp_path):
    straight = tmp_path / "straight"
    assert asr_train.main(std_args(yesno, straight, *STD)) == 0
    killed = tmp_path / "killed"
    step = kill_at_step(std_args(yesno, killed, *STD), killed, 3)
    assert 3 <= step < 12
    leave_debris(killed)
    assert asr_train.main(std_args(yesno, killed, *STD, "--resume")) == 0
    assert resumed_at(killed) == [step]
    assert read_step(killed / CHECKPOINT_NAME) == 12
    assert max_abs_diff(state_of(killed / "final"), state_of(straight / "final")) <= TOL
    # the run really moved: equal finals are not two copies of the initial model
    assert max_abs_diff(state_of(straight / "final"), state_of(yesno.init)) > 1e-3


def test_std_run_stopped_and_resumed(yesno, tmp_path):
    """stop_after leaves the loop as a kill would (after the step's checkpoint), without the final model."""
    straight = tmp_path / "straight"
    assert asr_train.main(std_args(yesno, straight, *STD)) == 0
    stopped = tmp_path / "stopped"
    assert asr_train.main(std_args(yesno, stopped, *STD, "--stop_after", 5)) == 0
    assert read_step(stopped / CHECKPOINT_NAME) == 5 and not (stopped / "final").exists()
    assert asr_train.main(std_args(yesno, stopped, *STD, "--resume")) == 0
    assert resumed_at(stopped) == [5]
    assert max_abs_diff(state_of(stopped / "final"), state_of(straight / "final")) <= TOL


def test_resume_under_other_options_is_refused_and_force_restarts(yesno, tmp_path):
    """A checkpoint written under other training options is not resumed (the optimiser state would not fit or
    would train something neither config describes); --force retrains from step 0 instead of resuming."""
    out = tmp_path / "run"
    assert asr_train.main(std_args(yesno, out, *STD, "--stop_after", 3)) == 0
    assert asr_train.main(std_args(yesno, out, *STD, "--optim_conf.lr", "5e-4", "--resume")) == 1
    assert read_step(out / CHECKPOINT_NAME) == 3, "the refused resume left the checkpoint alone"
    # logging and checkpoint cadence may change on resume
    assert asr_train.main(std_args(yesno, out, *STD, "--log_every", 3, "--stop_after", 4, "--resume")) == 0
    assert resumed_at(out) == [3]
    assert asr_train.main(std_args(yesno, out, *STD, "--optim_conf.lr", "5e-4", "--resume", "--force")) == 0
    assert resumed_at(out) == [3], "--force started afresh"
    assert read_step(out / CHECKPOINT_NAME) == 12


def test_trajectory_run_killed_and_resumed(yesno, teacher, tmp_path):
    straight = tmp_path / "straight"
    assert asr_train.main(cald_args("trajectory", yesno, teacher, straight, *TRAJECTORY)) == 0
    killed = tmp_path / "killed"
    step = kill_at_step(cald_args("trajectory", yesno, teacher, killed, *TRAJECTORY), killed, 3)
    assert 3 <= step < 10
    leave_debris(killed)
    assert asr_train.main(cald_args("trajectory", yesno, teacher, killed, *TRAJECTORY, "--resume")) == 0
    assert resumed_at(killed) == [step]
    assert max_abs_diff(state_of(killed / "final"), state_of(straight / "final")) <= TOL
    a, b = (torch.load(d / CHECKPOINT_NAME, weights_only=True)["guide"] for d in (straight, killed))
    assert a["updates"] == b["updates"] == 5
    assert max_abs_diff(a["teacher"], b["teacher"]) <= TOL
    assert max_abs_diff(a["teacher"], state_of(yesno.init)) > 1e-4, "the teacher was fine-tuned"
    assert max_abs_diff(adam_moments(a["optimizer"]), adam_moments(b["optimizer"])) <= TOL


def adam_moments(optimizer_state):
    return {f"{i}.{k}": v for i, s in optimizer_state["state"].items() for k, v in s.items() if torch.is_tensor(v)}


WRITER = textwrap.dedent("""
    import resource, signal, sys, torch
    from pathlib import Path
    from cald_asr.train.checkpoint import save_checkpoint
    path = Path(sys.argv[1])
    save_checkpoint({"state": {"step": 1}, "blob": torch.ones(16)}, path)
    # files may now grow to 64 KiB; the next checkpoints are 4 MiB
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.RLIM_INFINITY))
    big = lambda step: {"state": {"step": step}, "blob": torch.full((1 << 20,), float(step))}
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # first: the write fails with EFBIG, as on a full disk
    try:
        save_checkpoint(big(2), path)
    except Exception as e:
        print("write failed:", type(e).__name__, sorted(p.name for p in path.parent.iterdir()), flush=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # then: the kernel kills the writer in the middle of a write
    save_checkpoint(big(3), path)
    print("not reached", flush=True)
""")


def test_a_torn_checkpoint_write_keeps_the_last_good_one(tmp_path):
    path = tmp_path / "run" / CHECKPOINT_NAME
    r = subprocess.run([sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, env=subprocess_env())
    assert r.returncode == -signal.SIGXFSZ, r.stdout + r.stderr
    assert "not reached" not in r.stdout
    assert f"['{CHECKPOINT_NAME}']" in r.stdout, f"a failed write cleans up its temporary file: {r.stdout}"
    torn = [p for p in path.parent.iterdir() if p.name != CHECKPOINT_NAME]
    assert len(torn) == 1 and torn[0].stat().st_size <= 1 << 16, "the killed write left its torn temporary file"
    with pytest.raises(Exception):
        torch.load(torn[0], weights_only=True)
    ck = torch.load(path, weights_only=True)
    assert ck["state"]["step"] == 1 and torch.equal(ck["blob"], torch.ones(16))


def test_an_unreadable_checkpoint_is_named(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(ValueError, match=re.escape(f"{path}: unreadable checkpoint")):
        load_checkpoint(path)
