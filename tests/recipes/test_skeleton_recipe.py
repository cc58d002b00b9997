"""A new corpus the way README's "Adding your own corpus" says: copy egs/skeleton/asr1, put the audio in a folder
with a transcripts and a speakers file, run stages 1-8. The corpus is yesno's 60 recordings (8 kHz, so stage 2
resamples) laid out as a user's folder. The test checks the plumbing, not accuracy: by default with yesno's
tiny from-scratch teacher and student confs given on the command line (the skeleton's Whisper tiny.en teacher
takes about 30 s a step on yesno's 6 s clips on 2 busy cores), and with the skeleton's own confs under the
`recipe` marker, a few steps each (--train_args)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cald_asr.data.kaldi_dir import read_kv
from cald_asr.data.validate import validate_data_dir

ROOT = Path(__file__).resolve().parents[2]
SHORT = "--max_steps 4 --valid_every 2 --checkpoint_every 2 --snapshot_every 2 --log_every 1"
YESNO_CONF = ROOT / "egs" / "yesno" / "asr1" / "conf"
TINY = (
    "--teacher_config",
    YESNO_CONF / "teacher_tiny.yaml",
    "--train_config",
    YESNO_CONF / "train_teacher.yaml",
    "--student_config",
    YESNO_CONF / "train_student.yaml",
    "--mixer_config",
    YESNO_CONF / "bimamba2_tiny.yaml",
)
# what each variant names its runs
RUNS = {
    "tiny": ("asr_teacher_tiny_char", "cald_target_bimamba2_tiny_char", "cald_hybrid_bimamba2_tiny_char"),
    "own": ("asr_teacher_whisper_tiny_en_char", "cald_target_bimamba2_char", "cald_hybrid_bimamba2_char"),
}


def folder_corpus(yesno_dir: Path, root: Path) -> Path:
    """train/ (31 recordings of 4 made-up speakers, in speaker subfolders) and test/ (29, speakers unknown)."""
    waves = sorted((yesno_dir / "waves_yesno").glob("*.wav"))
    for i, wav in enumerate(waves):
        part = "train" if i < 31 else "test"
        spk = f"spk{i % 4}"
        dst = root / part / (spk if part == "train" else "") / wav.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, dst)
        words = " ".join("YES" if b == "1" else "NO" for b in wav.stem.split("_"))
        with (root / part / "transcripts").open("a") as f:
            f.write(f"{wav.stem} {words}\n")
        if part == "train":
            with (root / part / "speakers").open("a") as f:
                f.write(f"{wav.stem} {spk}\n")
    return root


def new_recipe(tmp_path: Path) -> Path:
    """egs/mycorpus/asr1 copied from the skeleton (symlinks kept, as `cp -r` does) in a tree whose egs/TEMPLATE,
    conf/ and utils/ are the project's, so that the recipe's relative paths resolve as in the repository."""
    tree = tmp_path / "tree"
    (tree / "egs").mkdir(parents=True)
    for name in ("conf", "utils"):
        (tree / name).symlink_to(ROOT / name)
    (tree / "egs" / "TEMPLATE").symlink_to(ROOT / "egs" / "TEMPLATE")
    recipe = tree / "egs" / "mycorpus" / "asr1"
    shutil.copytree(ROOT / "egs" / "skeleton" / "asr1", recipe, symlinks=True)
    return recipe


def clean_rows(results: Path, checkpoint: str = "best"):
    """The models of the clean WER table of a RESULTS.md (the robustness tables name them again)."""
    clean = results.read_text().split("\n## Robustness")[0]
    return [
        line.split(" | ")[0][2:] for line in clean.splitlines() if line.startswith("| ") and f"/{checkpoint} |" in line
    ]


def run(recipe: Path, *args):
    # path.sh activates <tree>/.venv, which the temporary tree lacks: put this interpreter's bin/ first instead
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["./run.sh", *map(str, args)], cwd=recipe, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module", params=["tiny", pytest.param("own", marks=pytest.mark.recipe)])
def skeleton_run(request, yesno_dir, tmp_path_factory):
    """(recipe dir, the stages 1-8 run, run names, options every later call repeats)."""
    tmp = tmp_path_factory.mktemp("skeleton")
    corpus = folder_corpus(yesno_dir, tmp / "corpus")
    recipe = new_recipe(tmp)
    same = (*TINY,) if request.param == "tiny" else ()
    r = run(
        recipe,
        "--local_data_opts",
        f"--corpus_dir {corpus} --dev_share 0.25",
        "--train_args",
        SHORT,
        "--noise_snrs",
        "10",
        "--num_threads",
        "2",
        *same,
    )
    return recipe, r, RUNS[request.param], same


def test_stages_1_to_8_from_a_folder(skeleton_run):
    recipe, r, (teacher, target, _), _ = skeleton_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = recipe / "data"
    for s, n in {"train": 31, "test": 29}.items():
        assert validate_data_dir(data / s) == [] and len(read_kv(data / s / "text")) == n
    utt2spk = read_kv(data / "train" / "utt2spk")
    assert all(u.startswith(f"{s}-") for u, s in utt2spk.items())  # Kaldi's rule, made by the preparer
    dev_spk = set(read_kv(data / "train_dev" / "utt2spk").values())
    train_spk = set(read_kv(data / "train_nodev" / "utt2spk").values())
    assert dev_spk and train_spk and not dev_spk & train_spk  # whole speakers held out
    assert len(read_kv(data / "train_dev" / "text")) + len(read_kv(data / "train_nodev" / "text")) == 31
    assert clean_rows(recipe / "RESULTS.md") == [f"{teacher}/best", f"{target}/best"]
    assert "| model | clean | 10 dB |" in (recipe / "RESULTS.md").read_text()
    # --num_threads reached the trainer
    assert "num_threads: 2" in (recipe / "exp" / teacher / "config.yaml").read_text()


def test_eval_models_teacher_scores_the_teacher_alone(skeleton_run):
    """--eval_models teacher with a strategy whose student was never trained: that student is not asked for."""
    recipe, first, (teacher, _, _), same = skeleton_run
    assert first.returncode == 0
    out = recipe / "RESULTS_teacher.md"
    r = run(
        recipe,
        *same,
        "--stage",
        "7",
        "--eval_models",
        "teacher",
        "--inference_model",
        "final",
        "--cald_configs",
        "../../../conf/cald/hybrid.yaml",
        "--noise_snrs",
        "10",
        "--results_file",
        out,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert clean_rows(out, "final") == [f"{teacher}/final"]
    assert (recipe / "exp" / teacher / "final" / "decode_default" / "test").is_dir()


def test_a_student_without_its_model_is_skipped_with_a_warning(skeleton_run):
    recipe, first, (teacher, target, hybrid), same = skeleton_run
    assert first.returncode == 0
    out = recipe / "RESULTS_all.md"
    cald = "../../../conf/cald/target.yaml ../../../conf/cald/hybrid.yaml"
    r = run(recipe, *same, "--stage", "8", "--cald_configs", cald, "--noise_snrs", "10", "--results_file", out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "warning: no " in r.stdout + r.stderr and f"{hybrid}/best" in r.stdout + r.stderr
    assert clean_rows(out) == [f"{teacher}/best", f"{target}/best"]
