"""cls_inference on the real all-MiniLM-L6-v2 teacher (seeded head) and a Linformer student: files of
sentences in, labels and scores out; broken lines reported by file:line without stopping the rest."""

import subprocess
import sys

import pytest
import torch

from cald_asr.bin.cls_inference import Text2Label, main
from cald_asr.bin.prepare_teacher import prepare_teacher
from cald_asr.convert import convert_model
from cald_asr.data.kaldi_dir import read_kv
from cald_asr.models.model_file import load_model, save_model

from shared_data import SHARED_DATA

TEACHER = {
    "model": "text_cls",
    "encoder": "bert",
    "pretrained": {"format": "bert_hf", "path": "default"},
    "pooling": "mean",
}
SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the acting is amateurish and the plot is a mess .",
    "it 's a charming and often affecting journey .",
    "dull , lifeless , and far too long .",
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "init"
    prepare_teacher(TEACHER, out, labels=["negative", "positive"], seed=3)
    return out


def outputs(d):
    return {f: read_kv(d / f, allow_empty_value=True) for f in ("label", "score", "probs", "failed", "timing")}


def test_lines_file_with_a_blank_line(teacher, tmp_path, capsys):
    src = tmp_path / "reviews.txt"
    src.write_text(f"{SENTENCES[0]}\n\n{SENTENCES[1]}\n{SENTENCES[2]}\n")
    assert main(["--model_dir", str(teacher), "--input", str(src), "--output_dir", str(tmp_path / "o")]) == 1
    assert f"{src}:2: empty sentence" in capsys.readouterr().err
    o = outputs(tmp_path / "o")
    assert sorted(o["label"]) == ["line-000001", "line-000003", "line-000004"]
    assert o["failed"] == {"line-000002": "line 2: empty sentence"}
    assert o["timing"]["examples"] == "3" and o["timing"]["failed"] == "1"
    direct = Text2Label(teacher)([SENTENCES[0], SENTENCES[1], SENTENCES[2]])
    for key, (label, p, dist) in zip(["line-000001", "line-000003", "line-000004"], direct):
        probs = dict(x.split(":") for x in o["probs"][key].split())
        assert o["label"][key] == label == max(probs, key=lambda k: float(probs[k]))
        assert float(o["score"][key]) == pytest.approx(p, abs=1e-4) == float(probs[label])
        assert sum(float(v) for v in probs.values()) == pytest.approx(1.0, abs=2e-4)


def test_kaldi_text_with_broken_lines_and_a_key_file(teacher, tmp_path):
    src = tmp_path / "text"
    src.write_bytes(
        b"u1 "
        + SENTENCES[0].encode()
        + b"\nu2\nu1 once more\nu3 caf\xe9 au lait\n\nu4 "
        + SENTENCES[3].encode()
        + b"\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cald_asr.bin.cls_inference",
            "--model_dir",
            str(teacher),
            "--input",
            str(src),
            "--output_dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    for line, reason in ((2, "empty sentence"), (3, "duplicate id 'u1' (first on line 1)"), (4, "not valid UTF-8")):
        assert f"{src}:{line}: {reason}" in r.stderr
    o = outputs(tmp_path / "o")
    assert sorted(o["label"]) == ["u1", "u4"] and sorted(o["failed"]) == ["u1", "u2", "u3"]
    keys = tmp_path / "keys"
    keys.write_text("u4 x\nu2 x\n")
    assert (
        main(
            [
                "--model_dir",
                str(teacher),
                "--input",
                str(src),
                "--output_dir",
                str(tmp_path / "k"),
                "--key_file",
                str(keys),
            ]
        )
        == 1
    )
    k = outputs(tmp_path / "k")
    assert list(k["label"]) == ["u4"] and list(k["failed"]) == ["u2"]
    assert k["label"]["u4"] == o["label"]["u4"] and k["probs"]["u4"] == o["probs"]["u4"]


def test_batching_does_not_change_the_result(teacher, tmp_path):
    src = tmp_path / "s.txt"
    src.write_text("".join(s + "\n" for s in SENTENCES))
    assert main(["--model_dir", str(teacher), "--input", str(src), "--output_dir", str(tmp_path / "b1")]) == 0
    assert (
        main(
            [
                "--model_dir",
                str(teacher),
                "--input",
                str(src),
                "--output_dir",
                str(tmp_path / "b4"),
                "--batch_size",
                "4",
            ]
        )
        == 0
    )
    one, four = outputs(tmp_path / "b1"), outputs(tmp_path / "b4")
    assert one["label"] == four["label"]
    for k in one["score"]:
        assert float(one["score"][k]) == pytest.approx(float(four["score"][k]), abs=2e-4)


def test_a_linformer_student_reads_at_most_its_max_len(teacher, tmp_path):
    review = SHARED_DATA / "movie_reviews" / "pos" / "cv000_29590.txt"
    if not review.is_file():
        pytest.skip(f"{review} not present")
    model, config = load_model(teacher)
    torch.manual_seed(0)
    convert_model(model, "linformer", {"k": 16, "max_len": 128})
    save_model(model, {**config, "mixer": "linformer", "mixer_conf": {"k": 16, "max_len": 128}}, tmp_path / "s")
    src = tmp_path / "r.txt"
    src.write_text(" ".join(review.read_text().split()) + "\nshort and sweet\n")
    assert main(["--model_dir", str(tmp_path / "s"), "--input", str(src), "--output_dir", str(tmp_path / "o")]) == 0
    timing = outputs(tmp_path / "o")["timing"]
    assert timing["examples"] == "2" and timing["truncated"] == "1"
    clf = Text2Label(tmp_path / "s")
    ids, cut = clf.encode([review.read_text()])
    assert cut == 1 and len(ids[0]) == 128 and ids[0][-1] == clf.tokenizer.sep_token_id


def test_setup_errors_exit_2(tmp_path, capsys):
    src = tmp_path / "s.txt"
    src.write_text("fine\n")
    assert main(["--model_dir", str(tmp_path / "none"), "--input", str(src), "--output_dir", str(tmp_path / "o")]) == 2
    assert "model config not found" in capsys.readouterr().err
    assert (
        main(
            [
                "--model_dir",
                str(tmp_path),
                "--input",
                str(tmp_path / "missing.txt"),
                "--output_dir",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


def test_a_rerun_classifies_only_what_is_missing(teacher, tmp_path, capsys):
    src = tmp_path / "s.txt"
    src.write_text("".join(s + "\n" for s in SENTENCES))
    out = tmp_path / "o"
    assert main(["--model_dir", str(teacher), "--input", str(src), "--output_dir", str(out)]) == 0
    first = outputs(out)
    assert read_kv(out / "status") == {"keys": "4", "classified": "4", "failed": "0"}
    lines = (out / "journal.jsonl").read_text().splitlines(keepends=True)
    # what a job killed while writing its third result leaves behind
    (out / "journal.jsonl").write_text(lines[0] + lines[1] + lines[2][:30])
    (out / "status").unlink()
    capsys.readouterr()
    assert main(["--model_dir", str(teacher), "--input", str(src), "--output_dir", str(out)]) == 0
    assert (
        f"{out}: 2 of 4 example(s) already classified with this model and options, 2 to classify"
        in capsys.readouterr().err
    )
    again = outputs(out)
    assert again["label"] == first["label"] and again["probs"] == first["probs"]
    assert again["timing"]["examples"] == "4"
    assert len((out / "journal.jsonl").read_text().splitlines()) == 4

    src.write_text("".join(s + "\n" for s in SENTENCES[:3]) + "an edited fourth line .\n")
    assert main(["--model_dir", str(teacher), "--input", str(src), "--output_dir", str(out)]) == 0
    assert "3 of 4 example(s) already classified" in capsys.readouterr().err
    edited = Text2Label(teacher)(["an edited fourth line ."])[0]
    assert outputs(out)["label"]["line-000004"] == edited[0]


def test_results_of_another_model_or_batch_size_are_removed(teacher, tmp_path, capsys):
    other = tmp_path / "other"
    prepare_teacher(TEACHER, other, labels=["negative", "positive"], seed=4)
    src = tmp_path / "s.txt"
    src.write_text("".join(s + "\n" for s in SENTENCES))
    out, fresh = tmp_path / "o", tmp_path / "fresh"
    assert main(["--model_dir", str(teacher), "--input", str(src), "--output_dir", str(out)]) == 0
    capsys.readouterr()
    assert main(["--model_dir", str(other), "--input", str(src), "--output_dir", str(out)]) == 0
    assert (
        f"cls_inference: {out} holds results of another model or inference config (model.safetensors differs): "
        "removing journal.jsonl, label, score, probs, failed, timing; decoding from scratch"
    ) in capsys.readouterr().err
    assert main(["--model_dir", str(other), "--input", str(src), "--output_dir", str(fresh)]) == 0
    assert outputs(out)["probs"] == outputs(fresh)["probs"] != {}
    assert len((out / "journal.jsonl").read_text().splitlines()) == 4
    capsys.readouterr()
    # the time per example is a result here: another batch size is timed again
    assert main(["--model_dir", str(other), "--input", str(src), "--output_dir", str(out), "--batch_size", "4"]) == 0
    assert "(batch_size 1 -> 4)" in capsys.readouterr().err
    assert outputs(out)["timing"]["batch_size"] == "4"
