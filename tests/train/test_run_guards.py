"""What a rerun of a training stage may and may not do to an experiment dir: a finished run is skipped only
when asked again with the same options and inputs (another config or a retrained teacher is refused, naming
the difference; --force retrains); an unfinished run's checkpoint is never overwritten without --resume or
--force; one run at a time holds the dir (a lock naming its holder); a corrupt latest checkpoint falls back
to the previous one."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import torch

from cald_asr.bin import asr_train
from cald_asr.train.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME
from cald_asr.train.run_lock import LOCK_NAME

from train_helpers import cald_args, max_abs_diff, read_step, state_of, std_args, subprocess_env

SHORT = ["--max_steps", 3, "--valid_every", 100, "--checkpoint_every", 1]


def test_a_finished_run_is_skipped_only_under_the_same_options(yesno, tmp_path, capsys):
    out = tmp_path / "run"
    assert asr_train.main(std_args(yesno, out, *SHORT)) == 0
    record = json.loads((out / ".done").read_text())
    assert record["steps"] == 3 and set(record["inputs"]) == {"init_model", "train_data", "valid_data"}
    weights = (out / "final" / "model.safetensors").read_bytes()
    capsys.readouterr()

    assert asr_train.main(std_args(yesno, out, *SHORT)) == 0
    assert "holds a finished run, skipping" in capsys.readouterr().out
    # logging options may differ
    assert asr_train.main(std_args(yesno, out, *SHORT, "--log_every", 2)) == 0
    assert "skipping" in capsys.readouterr().out

    assert asr_train.main(std_args(yesno, out, *SHORT, "--optim_conf.lr", "1e-4")) == 1
    err = capsys.readouterr().err
    assert "holds a finished run trained from other options or inputs" in err and "optim_conf" in err
    assert "--force retrains it" in err
    assert (out / "final" / "model.safetensors").read_bytes() == weights, "the refusal left the run alone"

    assert asr_train.main(std_args(yesno, out, *SHORT, "--optim_conf.lr", "1e-4", "--force")) == 0
    assert (out / "final" / "model.safetensors").read_bytes() != weights, "--force retrained"


def test_a_retrained_teacher_is_not_skipped(yesno, teacher, tmp_path, capsys):
    """The target student of one teacher is refused, not skipped, once the teacher's best/ has changed."""
    from cald_asr.models.model_file import load_model, save_model

    model, fields = load_model(teacher.best)
    mine = tmp_path / "teacher_best"
    save_model(model, fields, mine)
    student = tmp_path / "student"
    args = cald_args("target", yesno, teacher, student, "--max_steps", 2, "--valid_every", 100)
    args[args.index("--finetuned_model") + 1] = str(mine)
    assert asr_train.main(args) == 0
    with torch.no_grad():
        model.ctc.bias.add_(0.1)  # "retrained"
    save_model(model, fields, mine)
    capsys.readouterr()
    assert asr_train.main(args) == 1
    err = capsys.readouterr().err
    assert "finetuned_model:" in err and "--force retrains it" in err


def test_an_unfinished_checkpoint_needs_resume_or_force(yesno, tmp_path, capsys):
    out = tmp_path / "run"
    assert asr_train.main(std_args(yesno, out, *SHORT, "--stop_after", 2)) == 0
    capsys.readouterr()
    assert asr_train.main(std_args(yesno, out, *SHORT)) == 1
    assert (
        "holds the checkpoint of an unfinished run: --resume continues it, --force retrains from step 0"
        in capsys.readouterr().err
    )
    assert read_step(out / CHECKPOINT_NAME) == 2
    # resuming under other options is refused, naming the difference; the checkpoint stays
    assert asr_train.main(std_args(yesno, out, *SHORT, "--optim_conf.lr", "1e-4", "--resume")) == 1
    err = capsys.readouterr().err
    assert "was written by a run with other options or inputs (optim_conf" in err and "--force" in err
    assert read_step(out / CHECKPOINT_NAME) == 2
    assert asr_train.main(std_args(yesno, out, *SHORT, "--resume")) == 0
    assert read_step(out / CHECKPOINT_NAME) == 3


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(yesno, tmp_path):
    straight = tmp_path / "straight"
    assert asr_train.main(std_args(yesno, straight, *SHORT, "--max_steps", 6, "--specaug", "true")) == 0
    run = tmp_path / "run"
    assert asr_train.main(std_args(yesno, run, *SHORT, "--max_steps", 6, "--specaug", "true", "--stop_after", 4)) == 0
    assert read_step(run / PREVIOUS_NAME) == 3, "the previous checkpoint is kept beside the latest"
    latest = run / CHECKPOINT_NAME
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated: a full disk, a cut copy
    assert asr_train.main(std_args(yesno, run, *SHORT, "--max_steps", 6, "--specaug", "true", "--resume")) == 0
    log = (run / "train.log").read_text()
    assert f"{latest}: unreadable checkpoint" in log and "resuming from the previous checkpoint" in log
    assert "resumed from" in log and "at step 3" in log
    assert max_abs_diff(state_of(run / "final"), state_of(straight / "final")) <= 1e-6


def _lock(out, **holder):
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "started": time.time(), **holder}))


def test_a_second_run_in_the_same_dir_fails_at_once(yesno, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cald_asr.bin.asr_train",
            *std_args(yesno, out, "--max_steps", 500, "--valid_every", 1000),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_NAME).is_file():
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        t0 = time.monotonic()
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "cald_asr.bin.asr_train",
                *std_args(yesno, out, "--max_steps", 500, "--valid_every", 1000, "--resume"),
            ],
            capture_output=True,
            text=True,
            env=subprocess_env(),
        )
        assert second.returncode == 1
        assert f"is in use by pid {first.pid} on host {socket.gethostname()}" in second.stderr
        assert time.monotonic() - t0 < 60 and first.poll() is None, "refused at once; the first run goes on"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(yesno, tmp_path, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "run"
    _lock(out, pid=dead.pid)
    assert asr_train.main(std_args(yesno, out, *SHORT)) == 0
    assert f"taking over the lock of pid {dead.pid}" in capsys.readouterr().out
    assert not (out / LOCK_NAME).exists(), "released at the end"


def test_a_lock_from_another_host_is_reported_not_broken(yesno, tmp_path, capsys):
    out = tmp_path / "run"
    _lock(out, pid=os.getpid(), host="node-17.cluster")
    before = (out / LOCK_NAME).read_text()
    assert asr_train.main(std_args(yesno, out, *SHORT)) == 1
    err = capsys.readouterr().err
    assert f"is locked by pid {os.getpid()} on host node-17.cluster" in err and "another host" in err
    assert (out / LOCK_NAME).read_text() == before


def test_training_text_outside_the_token_list_is_refused(yesno, tmp_path, capsys):
    """yesno's token list has Y, E, S, N, O: a copy of the training dump with four 'MAYBE MAYBE MAYBE'
    transcripts has three unknown symbols (M, A, B) in 5 % of its tokens, far above max_unk_share's 1 %."""
    import shutil

    train = tmp_path / "train"
    shutil.copytree(yesno.train, train)
    lines = (train / "text").read_text().splitlines()
    lines[:4] = [f"{line.split()[0]} MAYBE MAYBE MAYBE" for line in lines[:4]]
    (train / "text").write_text("\n".join(lines) + "\n")
    args = std_args(yesno, tmp_path / "run", *SHORT)
    args[args.index("--train_data") + 1] = str(train)
    assert asr_train.main(args) == 1
    err = capsys.readouterr().err
    assert f"asr_train: error: {train / 'text'}: 36 of 660 tokens (5.45 %) are not in the token list" in err
    assert "'A' x12, 'B' x12, 'M' x12" in err and "more than max_unk_share=0.01" in err
    assert asr_train.main(args + ["--max_unk_share", "null"]) == 0, "the limit can be turned off"
