"""Stage 7 of the text recipe (egs/TEMPLATE/cls1/cls.sh) through sst2's run.sh, on a few real SST-2-style
sentences with the real MiniLM teacher (seeded head) as the trained model: a job that cannot finish fails
the stage by name and leaves no .done; broken lines are listed and the stage done; other --inference_args
evaluate again, the same ones skip."""

import subprocess
from pathlib import Path

import pytest

from cald_asr.bin.prepare_teacher import prepare_teacher
from cald_asr.data.kaldi_dir import read_kv, write_kv

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "sst2" / "cls1"
TEACHER = {
    "model": "text_cls",
    "encoder": "bert",
    "pretrained": {"format": "bert_hf", "path": "default"},
    "pooling": "mean",
}
SENTENCES = {
    "dev": {"d1": "a gorgeous , witty , seductive movie .", "d2": "dull , lifeless , and far too long ."},
    "test": {
        "t1": "it 's a charming and often affecting journey .",
        "t2": "the acting is amateurish and the plot is a mess .",
    },
}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "best"
    prepare_teacher(TEACHER, out, labels=["negative", "positive"], seed=3)
    return out


def stage7(root: Path, *args):
    cmd = [
        "./run.sh",
        "--stage",
        "7",
        "--stop_stage",
        "7",
        "--datadir",
        str(root / "data"),
        "--dumpdir",
        str(root / "dump"),
        "--expdir",
        str(root / "exp"),
        "--results_file",
        str(root / "RESULTS.md"),
        *map(str, args),
    ]
    return subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True)


def test_stage7_fails_on_a_job_that_did_not_finish_and_lists_broken_lines(teacher, tmp_path):
    for s, sentences in SENTENCES.items():
        write_kv(tmp_path / "dump" / s / "text", sentences)
    (tmp_path / "dump" / "dev" / "text").write_text("d1 " + SENTENCES["dev"]["d1"] + "\nd2\n")  # d2: no sentence
    best = tmp_path / "exp" / "cls_teacher_minilm" / "best"
    best.mkdir(parents=True)
    (best / "config.yaml").write_bytes((teacher / "config.yaml").read_bytes())
    weights = (teacher / "model.safetensors").read_bytes()
    (best / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # a copy cut short
    r = stage7(tmp_path)
    out = best / "infer" / "dev"
    assert r.returncode != 0
    assert (
        f"error: stage 7: cls_inference of dev did not finish (it crashed, was killed or could not start), see "
        f"{out}/cls_inference.log:"
    ) in r.stdout
    assert "cannot read model weights" in r.stdout  # the log's tail is quoted
    assert not (out / ".done").exists()

    (best / "model.safetensors").write_bytes(weights)
    r = stage7(tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"stage 7: 1 example(s) of dev could not be classified, listed in {out}/failed" in r.stdout
    assert read_kv(out / "failed") == {"d2": "line 2: empty sentence"}
    assert list(read_kv(out / "label")) == ["d1"] and list(read_kv(best / "infer" / "test" / "label")) == ["t1", "t2"]
    assert (out / ".done").is_file() and (best / "infer" / "test" / ".done").is_file()

    r = stage7(tmp_path)
    assert r.returncode == 0 and r.stdout.count("is done, skipping") == 2
    r = stage7(tmp_path, "--inference_args", "--batch_size 2")
    assert r.returncode == 0 and "is done, skipping" not in r.stdout
    assert "(batch_size 1 -> 2)" in (best / "infer" / "test" / "cls_inference.log").read_text()
    assert read_kv(best / "infer" / "test" / "timing")["batch_size"] == "2"
