"""Recipe stage 7 (egs/TEMPLATE/asr1/asr.sh) driven through yesno's run.sh on its real test set, with the
seeded tiny models of conftest.py standing in as the trained teacher: a crashed job fails the stage by
name and leaves no .done, a rerun with another --nj decodes only what is missing, results of another
model or inference config are removed and never merged, a failed utterance is listed and the stage done;
with --noise_snrs, stage 7 decodes noisy copies of the test set too and stage 8 reports them."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import jiwer
import pytest
import yaml

from cald_asr.bin.asr_inference import main as decode
from cald_asr.data.kaldi_dir import read_kv, write_kv
from cald_asr.decode.journal import file_sha1, read_journal

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "yesno" / "asr1"
SET = "test_yesno"


@pytest.fixture(scope="module")
def dumped(tmp_path_factory, yesno_dir):
    """yesno through stages 1-2: dump/test_yesno/ (29 utterances at 16 kHz)."""
    root = tmp_path_factory.mktemp("yesno")
    r = subprocess.run(
        [
            "./run.sh",
            "--stop_stage",
            "2",
            "--datadir",
            str(root / "data"),
            "--dumpdir",
            str(root / "dump"),
            "--expdir",
            str(root / "exp"),
        ],
        cwd=RECIPE,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return root / "dump" / SET


class Recipe:
    """One experiment: its own dump/test_yesno (key-value files; the audio stays in the shared dump) and exp/."""

    def __init__(self, tmp_path: Path, dumped: Path, model_dir: Path):
        self.root = tmp_path
        self.scp = tmp_path / "dump" / SET / "wav.scp"
        self.scp.parent.mkdir(parents=True)
        for f in dumped.iterdir():
            if f.is_file():
                shutil.copy(f, self.scp.parent / f.name)
        self.model = tmp_path / "exp" / "asr_teacher_tiny_char" / "best"
        self.put_model(model_dir)

    def put_model(self, model_dir: Path) -> None:
        self.model.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "model.safetensors"):
            shutil.copy(model_dir / name, self.model / name)  # written now: newer than any decode

    def dec(self, tag: str = "decode_default") -> Path:
        return self.model / tag / SET

    def stage7(self, *args, stop_stage: int = 7):
        cmd = [
            "./run.sh",
            "--stage",
            "7",
            "--stop_stage",
            str(stop_stage),
            "--cald_configs",
            "",
            "--noise_snrs",
            "",  # the tests below but the last decode the clean set alone
            "--datadir",
            str(self.root / "data"),
            "--dumpdir",
            str(self.root / "dump"),
            "--expdir",
            str(self.root / "exp"),
            "--results_file",
            str(self.root / "RESULTS.md"),
            *map(str, args),
        ]
        return subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True)

    def reference(self, model_dir: Path, name: str, *extra) -> dict:
        """The set decoded in one uninterrupted asr_inference run."""
        out = self.root / name
        assert decode(
            [
                "--asr_train_config",
                str(model_dir),
                "--data_path_and_name_and_type",
                f"{self.scp},speech,sound",
                "--output_dir",
                str(out),
                *map(str, extra),
            ]
        ) in (0, 1)
        return recog(out)


def recog(d: Path) -> dict:
    return {f: (d / "1best_recog" / f).read_text() for f in ("text", "token_int", "score")}


def logs(dec: Path) -> str:
    return "".join(p.read_text() for p in sorted((dec / "logdir").glob("asr_inference.*.log")))


def test_a_crashed_job_fails_the_stage_and_a_rerun_with_another_nj_decodes_the_rest(dumped, teacher_dir, tmp_path):
    rec = Recipe(tmp_path, dumped, teacher_dir)
    scp = read_kv(rec.scp)
    victim = sorted(scp)[9]
    write_kv(rec.scp, {**scp, victim: "kill -9 $PPID |"})  # reading it kills the job, as the OOM killer would
    r = rec.stage7("--nj", 2)
    assert r.returncode != 0
    dec = rec.dec()
    job = 1 if victim in read_kv(dec / "logdir" / "keys.1.scp") else 2
    assert (
        f"error: stage 7: decoding job {job} of 2 of {SET} did not finish (it crashed, was killed or could not "
        f"start), see {dec}/logdir/asr_inference.{job}.log:"
    ) in r.stdout
    assert (
        f"error: stage 7: 1 of 2 decoding job(s) of {SET} did not finish; what they decoded is kept: rerun the "
        "stage to decode the rest"
    ) in r.stdout
    assert not (dec / ".done").exists() and not (dec / "1best_recog").exists()
    assert "merge_decodes" not in r.stdout
    kept = {
        k
        for d in (dec / "logdir").glob("output.*")
        for k, v in read_journal(d / "journal.jsonl").items()
        if "failed" not in v
    }
    assert victim not in kept and 14 <= len(kept) < 29  # the other job finished, this one stopped at the victim

    write_kv(rec.scp, scp)  # the entry repaired
    r = rec.stage7("--nj", 3)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (dec / ".done").is_file()
    assert sum(int(n) for n in re.findall(r"(\d+) to decode", logs(dec))) == 29 - len(kept)
    assert recog(dec) == rec.reference(teacher_dir, "ref")
    assert read_kv(dec / "rtf")["utterances"] == "29"


def test_results_of_another_model_are_removed_and_never_merged(dumped, teacher_dir, student_dir, tmp_path):
    rec = Recipe(tmp_path, dumped, teacher_dir)
    assert rec.stage7("--nj", 3).returncode == 0
    dec = rec.dec()
    assert (dec / "logdir" / "output.3" / "journal.jsonl").is_file()
    rec.put_model(student_dir)  # "retrained": another model in the same place
    r = rec.stage7("--nj", 2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = logs(dec)
    assert "holds results of another model or inference config (config.yaml differs; model.safetensors differs)" in log
    assert re.findall(r"(\d+) of \d+ utterance\(s\) already decoded", log) == ["0", "0"]
    assert not (dec / "logdir" / "output.3").exists()
    assert recog(dec) == rec.reference(student_dir, "ref")
    fp = json.loads((dec / "fingerprint").read_text())
    assert fp["files"]["model.safetensors"] == file_sha1(student_dir / "model.safetensors")


def test_an_edited_inference_config_decodes_again(dumped, teacher_dir, tmp_path):
    rec = Recipe(tmp_path, dumped, teacher_dir)
    conf = tmp_path / "decode.yaml"
    conf.write_text(yaml.safe_dump({"beam_size": 1}))
    assert rec.stage7("--inference_config", conf).returncode == 0
    dec = rec.dec("decode_decode")
    conf.write_text(yaml.safe_dump({"beam_size": 3}))  # same file, same tag, other results
    r = rec.stage7("--inference_config", conf)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "is decoded, skipping" not in r.stdout
    assert "(beam_size 1 -> 3)" in logs(dec)
    assert recog(dec) == rec.reference(teacher_dir, "ref", "--beam_size", 3)
    r = rec.stage7("--inference_config", conf)
    assert r.returncode == 0 and "is decoded, skipping" in r.stdout


def test_a_failed_utterance_is_listed_and_the_stage_done(dumped, teacher_dir, tmp_path):
    rec = Recipe(tmp_path, dumped, teacher_dir)
    scp = read_kv(rec.scp)
    victim = sorted(scp)[3]
    write_kv(rec.scp, {**scp, victim: str(tmp_path / "gone.wav")})
    r = rec.stage7("--nj", 2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    dec = rec.dec()
    assert (dec / ".done").is_file()
    failed = read_kv(dec / "failed")
    assert list(failed) == [victim] and "does not exist" in failed[victim]
    assert f"stage 7: 1 utterance(s) of {SET} could not be decoded, listed in {dec}/failed" in r.stdout
    assert len(read_kv(dec / "1best_recog" / "text", allow_empty_value=True)) == 28


def test_noisy_copies_are_decoded_and_reported_with_intervals_and_ratios(dumped, teacher_dir, student_dir, tmp_path):
    rec = Recipe(tmp_path, dumped, teacher_dir)
    student = tmp_path / "exp" / "cald_target_bimamba2_tiny_char" / "best"
    student.mkdir(parents=True)
    for name in ("config.yaml", "model.safetensors"):
        shutil.copy(student_dir / name, student / name)
    args = ("--cald_configs", "../../../conf/cald/target.yaml", "--noise_snrs", "5", "--nj", 1)  # one SNR: 4 decodes
    r = rec.stage7(*args, stop_stage=8)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    dump = tmp_path / "dump"
    assert f"stage 7: white noise at SNR 5 dB: {dump}/{SET} -> {dump}/{SET}_snr{{5}}/" in r.stdout
    cells = {}
    for model in (rec.model, student):
        for s in (SET, f"{SET}_snr5"):
            res = json.loads((model / "decode_default" / s / "score_wer" / "result.json").read_text())
            assert res["snt"] == 29
            cells[model.parent.name, s] = res["err"]
    results = (tmp_path / "RESULTS.md").read_text()
    # the clean table: WER, then CER (characters, spaces included: score_cer/; jiwer recounts it), then RTF
    clean = results.split("\n## Robustness")[0]
    assert f"| model | mixer | params | {SET} WER | {SET} CER | {SET} RTF |" in clean
    for model in (rec.model, student):
        row = next(line for line in clean.splitlines() if line.startswith(f"| {model.parent.name}/best |"))
        wer, cer = (float(x) for x in row.split(" | ")[3:5])
        dec = model / "decode_default" / SET
        refs = read_kv(dump / SET / "text", allow_empty_value=True)
        hyps = read_kv(dec / "1best_recog" / "text", allow_empty_value=True)
        keys = sorted(refs)
        one_space = lambda t: " ".join(t.split())  # noqa: E731  (our CER: a run of spaces is one boundary)
        expected_cer = 100.0 * jiwer.cer([one_space(refs[k]) for k in keys], [one_space(hyps.get(k, "")) for k in keys])
        assert wer == round(cells[model.parent.name, SET], 2)
        assert cer == pytest.approx(expected_cer, abs=0.006) and (dec / "score_cer" / "result.txt").is_file()
    robust = results.split("\n## Robustness: WER (%) [95 % bootstrap interval] under white noise\n")[1]
    section = robust.split(f"\n### {SET}\n")[1].split("\n### ")[0]  # up to the per-model tables
    assert section.startswith("\n| model | clean | 5 dB |\n|---|---:|---:|\n")
    wer_table, ratio_table = section.split("\n\n| WER / teacher's WER | clean | 5 dB |\n")
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in wer_table.splitlines()[3:]}
    for run in ("asr_teacher_tiny_char", "cald_target_bimamba2_tiny_char"):
        for cell, s in zip(rows[f"{run}/best"], (SET, f"{SET}_snr5")):
            wer, low, high = map(float, re.fullmatch(r"([\d.]+) \[([\d.]+), ([\d.]+)\]( \|)?", cell).groups()[:3])
            assert wer == round(cells[run, s], 2) and low <= wer <= high
    assert list(rows) == ["asr_teacher_tiny_char/best", "cald_target_bimamba2_tiny_char/best"]
    expected = [
        f"{cells['cald_target_bimamba2_tiny_char', s] / cells['asr_teacher_tiny_char', s]:.2f}"
        for s in (SET, f"{SET}_snr5")
    ]
    assert ratio_table.splitlines()[1:] == ["| cald_target_bimamba2_tiny_char/best | " + " | ".join(expected) + " |"]
    r = rec.stage7(*args)
    assert r.returncode == 0 and r.stdout.count("is decoded, skipping") == 4
    assert r.stdout.count("is up to date with") == 1
