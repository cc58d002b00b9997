"""Session fixtures for the training tests, built once in one temp dir by the real tools: the yesno
recipe's stages 1-4 (data, dumps, token list, tiny transformer) and a short Std. run of that transformer
with snapshots every 2 steps (the teacher the CALD strategies use)."""

import subprocess

import pytest
import torch

from train_helpers import RECIPE, Teacher, Yesno, cli, std_args, subprocess_env


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here too (see train_helpers); the previous count is restored for other folders."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def yesno(tmp_path_factory, yesno_dir) -> Yesno:
    root = tmp_path_factory.mktemp("yesno")
    r = subprocess.run(
        [
            "./run.sh",
            "--datadir",
            root / "data",
            "--dumpdir",
            root / "dump",
            "--expdir",
            root / "exp",
            "--local_data_opts",
            f"--corpus_dir {yesno_dir}",
            "--stop_stage",
            "4",
        ],
        cwd=RECIPE,
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return Yesno(
        root,
        root / "dump" / "train_nodev",
        root / "dump" / "train_dev",
        root / "exp" / "asr_teacher_tiny_char" / "init",
    )


@pytest.fixture(scope="session")
def teacher(yesno) -> Teacher:
    out = yesno.root / "exp" / "teacher"
    r = cli(*std_args(yesno, out, "--max_steps", 6, "--snapshot_every", 2, "--valid_every", 3))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return Teacher(out, out / "best", out / "snapshots")
