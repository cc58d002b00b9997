"""asr_inference keeps what it decoded: results appended per utterance, a rerun after a kill decodes only
the rest, results of another model or config are removed, a crash exits 3 (not 1), failures are retried."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cald_asr.bin.asr_inference import main
from cald_asr.data.audio import load_audio, write_wav
from cald_asr.data.kaldi_dir import read_kv, write_kv
from cald_asr.decode.journal import read_journal

RECOG_FILES = ("text", "token", "token_int", "score")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def yesno30(tmp_path_factory, yesno_dir):
    """30 real yesno recordings at 16 kHz, as stage 2 dumps them: (dir with wav.scp and utt2num_samples,
    {utt: path})."""
    d = tmp_path_factory.mktemp("yesno30")
    wavs, lengths = {}, {}
    for p in sorted((yesno_dir / "waves_yesno").glob("*.wav"))[:30]:
        x, _ = load_audio(str(p), target_fs=16000)
        utt = f"yesno-{p.stem}"
        wavs[utt], lengths[utt] = str(d / f"{p.stem}.wav"), len(x)
        write_wav(wavs[utt], x, 16000)
    write_kv(d / "wav.scp", wavs)
    write_kv(d / "utt2num_samples", lengths)
    return d, wavs


@pytest.fixture
def stalled(yesno30, tmp_path):
    """The same 30 utterances, but the 16th in decoding order (longest first) is read from a FIFO that
    nobody writes: a job stops there, deterministically, with 15 decoded, until the test stops it.
    -> (dir with its wav.scp, that utterance's id)."""
    data, wavs = yesno30
    lengths = read_kv(data / "utt2num_samples")
    victim = sorted(wavs, key=lambda k: -int(lengths[k]))[15]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    d = tmp_path / "data"
    d.mkdir()
    write_kv(d / "wav.scp", {**wavs, victim: f"cat {fifo} |"})
    shutil.copy(data / "utt2num_samples", d)  # the known lengths put the FIFO in the middle of the order
    yield d, victim
    try:  # a cat still waiting (its job was SIGKILLed) reads end-of-file and exits
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def args(model_dir, scp, out_dir, *extra):
    return [
        "--asr_train_config",
        str(model_dir),
        "--data_path_and_name_and_type",
        f"{scp},speech,sound",
        "--output_dir",
        str(out_dir),
        *map(str, extra),
    ]


def start(model_dir, scp, out_dir, *extra):
    """asr_inference as its own process; stderr goes to a file (a full pipe would stall it)."""
    log = Path(f"{out_dir}.{time.monotonic_ns()}.log")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cald_asr.bin.asr_inference", *args(model_dir, scp, out_dir, *extra)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    proc.log = log
    return proc


def finish(proc) -> str:
    proc.wait(timeout=300)
    return proc.log.read_text()


def recog(d: Path):
    return {name: (d / "1best_recog" / name).read_text() for name in RECOG_FILES}


def journal_lines(out: Path):
    path = out / "journal.jsonl"
    return path.read_text().splitlines() if path.is_file() else []


def wait_for_lines(proc, out: Path, n: int, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    try:
        while len(journal_lines(out)) < n:
            assert proc.poll() is None, f"finished before {n} utterances were journaled: {finish(proc)[-2000:]}"
            assert time.monotonic() - t0 < timeout, f"no {n} journal lines after {timeout} s"
            time.sleep(0.005)
    except BaseException:
        proc.kill()  # leave nothing running behind a failed test
        proc.wait()
        raise


@pytest.fixture(scope="module")
def reference(teacher_dir, yesno30, tmp_path_factory):
    """An uninterrupted decode of the 30 utterances."""
    data, _ = yesno30
    out = tmp_path_factory.mktemp("ref") / "dec"
    assert main(args(teacher_dir, data / "wav.scp", out)) == 0
    return out


def test_sigkill_mid_decode_then_rerun_decodes_only_the_rest(teacher_dir, yesno30, stalled, reference, tmp_path):
    _, wavs = yesno30
    data, victim = stalled
    out = tmp_path / "dec"
    proc = start(teacher_dir, data / "wav.scp", out)
    wait_for_lines(proc, out, 5)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "status").exists() and not (out / "1best_recog").exists()
    kept = [k for k, r in read_journal(out / "journal.jsonl").items() if "failed" not in r]
    assert 5 <= len(kept) <= 15 and victim not in kept

    write_kv(data / "wav.scp", wavs)  # the stalled entry readable again
    proc = start(teacher_dir, data / "wav.scp", out)
    err = finish(proc)
    assert proc.returncode == 0, err[-2000:]
    assert (
        f"{len(kept)} of 30 utterance(s) already decoded with this model and options (0 by other jobs), "
        f"{30 - len(kept)} to decode"
    ) in err
    # every utterance decoded exactly once over both runs (a line torn by the kill is cut, not kept)
    keys = [json.loads(line)["key"] for line in journal_lines(out)]
    assert sorted(keys) == sorted(wavs)
    assert recog(out) == recog(reference)
    assert read_kv(out / "status") == {"keys": "30", "decoded": "30", "failed": "0"}
    assert read_kv(out / "rtf")["utterances"] == "30"


def test_a_torn_last_line_is_ignored_and_its_utterance_decoded_again(teacher_dir, yesno30, reference, tmp_path):
    data, _ = yesno30
    out = tmp_path / "dec"
    shutil.copytree(reference, out)
    raw = (out / "journal.jsonl").read_bytes()
    last = raw[:-1].rfind(b"\n") + 1
    (out / "journal.jsonl").write_bytes(raw[: last + 25])  # what a kill in the middle of a write leaves
    torn_key = json.loads(raw[last:])["key"]
    assert torn_key not in read_journal(out / "journal.jsonl")
    proc = start(teacher_dir, data / "wav.scp", out)
    err = finish(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "29 of 30 utterance(s) already decoded with this model and options (0 by other jobs), 1 to decode" in err
    assert "not a journal record" not in err
    lines = journal_lines(out)
    assert len(lines) == 30 and json.loads(lines[-1])["key"] == torn_key
    assert recog(out) == recog(reference)


def test_sigterm_exits_3_and_keeps_what_was_decoded(teacher_dir, yesno30, stalled, reference, tmp_path):
    _, wavs = yesno30
    data, victim = stalled
    out = tmp_path / "dec"
    proc = start(teacher_dir, data / "wav.scp", out)
    wait_for_lines(proc, out, 5)
    proc.send_signal(signal.SIGTERM)  # a scheduler's time limit, scancel
    err = finish(proc)
    assert proc.returncode == 3, err[-2000:]
    n = len(read_journal(out / "journal.jsonl"))
    assert 5 <= n <= 15 and len(journal_lines(out)) == n and victim not in read_journal(out / "journal.jsonl")
    assert (
        f"asr_inference: error: terminated by SIGTERM; {out / 'journal.jsonl'} keeps the {n} result(s) done "
        "so far: run the same command again to do the rest"
    ) in err
    assert not (out / "status").exists()
    write_kv(data / "wav.scp", wavs)
    assert main(args(teacher_dir, data / "wav.scp", out)) == 0
    assert recog(out) == recog(reference)


def test_results_of_another_model_or_config_are_removed(teacher_dir, student_dir, yesno16k, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data, wavs, _ = yesno16k
    out, fresh = tmp_path / "dec", tmp_path / "fresh"
    assert main(args(teacher_dir, data / "wav.scp", out, "--beam_size", 2)) == 0
    teacher_text = recog(out)

    assert main(args(student_dir, data / "wav.scp", out, "--beam_size", 2)) == 0
    assert (
        f"{out} holds results of another model or inference config (config.yaml differs; model.safetensors "
        "differs): removing journal.jsonl, 1best_recog, failed, rtf; decoding from scratch" in caplog.text
    )
    assert main(args(student_dir, data / "wav.scp", fresh, "--beam_size", 2)) == 0
    assert recog(out) == recog(fresh) != teacher_text
    assert len(journal_lines(out)) == len(wavs)  # nothing of the teacher's kept

    caplog.clear()
    assert main(args(student_dir, data / "wav.scp", out, "--beam_size", 3, "--nbest", 2)) == 0
    assert "(beam_size 2 -> 3; nbest 1 -> 2)" in caplog.text
    assert (out / "2best_recog" / "text").is_file() and len(journal_lines(out)) == len(wavs)

    caplog.clear()
    # the same model and options: nothing decoded again, whatever the batch size
    assert main(args(student_dir, data / "wav.scp", out, "--beam_size", 3, "--nbest", 2, "--batch_size", 4)) == 0
    assert f"{len(wavs)} of {len(wavs)} utterance(s) already decoded" in caplog.text and "removing" not in caplog.text
    assert len(journal_lines(out)) == len(wavs)


def test_failed_or_changed_utterances_are_decoded_again(teacher_dir, yesno16k, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data, wavs, _ = yesno16k
    keys = sorted(wavs)
    scp = {**wavs, keys[0]: str(tmp_path / "later.wav")}
    write_kv(tmp_path / "wav.scp", scp)
    out = tmp_path / "dec"
    assert main(args(teacher_dir, tmp_path / "wav.scp", out)) == 1
    assert "does not exist" in read_kv(out / "failed")[keys[0]]
    assert read_kv(out / "status") == {"keys": "6", "decoded": "5", "failed": "1"}

    shutil.copy(wavs[keys[0]], tmp_path / "later.wav")  # the input fixed
    scp[keys[1]] = wavs[keys[2]]  # and another entry changed: its old result is not its result any more
    write_kv(tmp_path / "wav.scp", scp)
    caplog.clear()
    assert main(args(teacher_dir, tmp_path / "wav.scp", out)) == 0
    assert (
        "4 of 6 utterance(s) already decoded with this model and options (0 by other jobs), 2 to decode" in caplog.text
    )
    assert read_kv(out / "failed", allow_empty_value=True) == {}
    text = read_kv(out / "1best_recog" / "token_int", allow_empty_value=True)
    assert text[keys[1]] == text[keys[2]]


def test_resume_from_takes_done_utterances_of_the_same_model_only(teacher_dir, student_dir, yesno16k, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data, wavs, _ = yesno16k
    keys = sorted(wavs)
    (tmp_path / "part1").write_text("".join(f"{k}\n" for k in keys[:2]))
    (tmp_path / "part2").write_text("".join(f"{k}\n" for k in keys[2:4]))
    scp = data / "wav.scp"
    assert main(args(teacher_dir, scp, tmp_path / "p1", "--key_file", tmp_path / "part1")) == 0
    assert main(args(student_dir, scp, tmp_path / "p2", "--key_file", tmp_path / "part2")) == 0
    caplog.clear()
    out = tmp_path / "all"
    assert (
        main(
            args(
                teacher_dir,
                scp,
                out,
                "--resume_from",
                tmp_path / "p1",
                "--resume_from",
                tmp_path / "p2",
                "--resume_from",
                tmp_path / "nothing_there",
            )
        )
        == 0
    )
    assert (
        "2 of 6 utterance(s) already decoded with this model and options (2 by other jobs), 4 to decode" in caplog.text
    )
    assert f"not resuming from {tmp_path / 'p2'}: config.yaml differs; model.safetensors differs" in caplog.text
    assert sorted(read_journal(out / "journal.jsonl")) == keys  # this dir alone holds all its results now
    assert main(args(teacher_dir, scp, tmp_path / "fresh")) == 0
    assert recog(out) == recog(tmp_path / "fresh")
