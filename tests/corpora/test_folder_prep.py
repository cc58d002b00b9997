"""cald_asr.corpora.folder on real FSDD recordings laid out as a user's own corpus: one folder per set with the
audio (in speaker subfolders), a `transcripts` file and an optional `speakers` file."""

import shutil

import numpy as np
import pytest
import soundfile as sf

from cald_asr.corpora import folder
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.audio import load_audio
from cald_asr.data.kaldi_dir import read_kv
from cald_asr.data.validate import inspect_data_dir

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEAKERS = ("george", "jackson", "lucas", "nicolas")


def make_set(fsdd_dir, set_dir, takes, speakers=SPEAKERS, digits=(3, 7), with_speakers=True):
    """<set>/<speaker>/<digit>_<speaker>_<take>.wav, transcripts '<stem> <word>', speakers '<stem> <speaker>'."""
    trn, spk = [], []
    for s in speakers:
        (set_dir / s).mkdir(parents=True, exist_ok=True)
        for d in digits:
            for t in takes:
                stem = f"{d}_{s}_{t}"
                shutil.copy(fsdd_dir / "recordings" / f"{stem}.wav", set_dir / s / f"{stem}.wav")
                trn.append(f"{stem} {WORDS[d]}\n")
                spk.append(f"{stem} {s}\n")
    (set_dir / "transcripts").write_text("".join(trn))
    if with_speakers:
        (set_dir / "speakers").write_text("".join(reversed(spk)))  # any order
    return set_dir


@pytest.fixture
def corpus(fsdd_dir, tmp_path):
    root = tmp_path / "my_corpus"
    make_set(fsdd_dir, root / "train", takes=(10, 11, 12))
    make_set(fsdd_dir, root / "test", takes=(0, 1))
    return root


def test_sets_are_written_sorted_with_ids_prefixed_by_their_speaker(corpus, tmp_path, capsys):
    counts = folder.prepare_folder(corpus, tmp_path / "data")
    assert counts == {"train": 24, "test": 16}
    train = tmp_path / "data" / "train"
    ins = inspect_data_dir(train, check_audio=True)
    assert ins.problems == [] and ins.warnings == []
    utt2spk = read_kv(train / "utt2spk")
    assert list(utt2spk) == sorted(utt2spk, key=lambda u: u.encode())
    assert utt2spk["george-3_george_10"] == "george" and len(utt2spk) == 24
    assert read_kv(train / "text")["lucas-7_lucas_12"] == "seven"
    wav = read_kv(train / "wav.scp")["nicolas-3_nicolas_11"]
    assert wav == str((corpus / "train" / "nicolas" / "3_nicolas_11.wav").resolve())
    assert int(read_kv(train / "utt2num_samples")["nicolas-3_nicolas_11"]) == sf.info(wav).frames
    assert read_kv(train / "spk2utt")["jackson"].split() == [
        f"jackson-{d}_jackson_{t}" for d in (3, 7) for t in (10, 11, 12)
    ]
    out = capsys.readouterr().out
    assert "my_corpus: train              24 utts    4 spk" in out


def test_without_a_speakers_file_each_recording_is_its_own_speaker(fsdd_dir, tmp_path):
    make_set(fsdd_dir, tmp_path / "c" / "train", takes=(10,), with_speakers=False)
    folder.prepare_folder(tmp_path / "c", tmp_path / "data", sets=["train"])
    utt2spk = read_kv(tmp_path / "data" / "train" / "utt2spk")
    assert utt2spk == {u: u for u in utt2spk} and "3_george_10" in utt2spk


def test_a_stem_that_begins_with_its_speaker_is_kept(fsdd_dir, tmp_path):
    d = tmp_path / "c" / "train"
    d.mkdir(parents=True)
    shutil.copy(fsdd_dir / "recordings" / "3_theo_10.wav", d / "theo_take10.wav")
    shutil.copy(fsdd_dir / "recordings" / "4_theo_10.wav", d / "t10.wav")
    (d / "transcripts").write_text("theo_take10 three\nt10 four\n")
    (d / "speakers").write_text("theo_take10 theo\nt10 theo\n")
    folder.prepare_folder(tmp_path / "c", tmp_path / "data", sets=["train"])
    assert read_kv(tmp_path / "data" / "train" / "utt2spk") == {"theo-t10": "theo", "theo_take10": "theo"}


def test_sphere_and_16k_audio_need_nothing_extra(fsdd_dir, tmp_path):
    """NIST SPHERE (uncompressed, as LDC ships most of it) and 16 kHz files are read as they are."""
    d = tmp_path / "c" / "train"
    d.mkdir(parents=True)
    x8, _ = load_audio(str(fsdd_dir / "recordings" / "5_yweweler_20.wav"))
    sf.write(d / "a.sph", x8, 8000, format="NIST", subtype="PCM_16")
    x16, _ = load_audio(str(fsdd_dir / "recordings" / "6_yweweler_20.wav"), target_fs=16000)
    sf.write(d / "b.flac", x16, 16000)
    (d / "transcripts").write_text("a five\nb six\n")
    folder.prepare_folder(tmp_path / "c", tmp_path / "data", sets=["train"])
    train = tmp_path / "data" / "train"
    assert inspect_data_dir(train, check_audio=True).problems[0].message.startswith("'b': sample rate 16000 Hz")
    back, fs = load_audio(read_kv(train / "wav.scp")["a"])
    assert fs == 8000 and np.array_equal(back, x8)
    assert read_kv(train / "utt2num_samples") == {"a": str(len(x8)), "b": str(len(x16))}


def test_every_problem_of_the_input_is_named_by_file_and_line(corpus, tmp_path):
    train = corpus / "train"
    trn, spk = train / "transcripts", train / "speakers"
    lines = trn.read_text().splitlines()  # 24 lines; george's first: 3_george_10, 3_george_11
    lines[1] = "3_george_11"  # no transcript
    lines += ["9_nobody_1 nine", lines[5]]  # no audio; 7_george_12 again
    trn.write_text("\n".join(lines) + "\n")
    (train / "george" / "3_george_10.wav").unlink()
    shutil.copy(train / "lucas" / "3_lucas_10.wav", train / "stray.wav")
    (train / "broken.sph").write_bytes(b"NIST_1A\n   1024\nsample_coding -s26 pcm,embedded-shorten-v2.00\n")
    trn.open("a").write("broken seven\nstray three\n")
    spk.write_text(spk.read_text() + "broken lucas\nstray lucas theo\n")
    with pytest.raises(CorpusError) as e:
        folder.prepare_folder(corpus, tmp_path / "data")
    lines_of_error = str(e.value).splitlines()
    assert lines_of_error[:-1] == [
        "7 problem(s) in the corpus:",
        f"{trn}:2: '3_george_11' has no transcript",
        f"{trn}:26: '7_george_12' again (first on line 6)",
        f"{trn}:1: no audio file '3_george_10.*' below {train}",
        f"{trn}:25: no audio file '9_nobody_1.*' below {train}",
        f"{trn}:25: '9_nobody_1' has no line in {spk}",
        f"{spk}:26: speaker id 'lucas theo' must be one field without '/' or '..'",
    ]
    # libsndfile's own words in between
    assert lines_of_error[-1].startswith(f"{train / 'broken.sph'}: cannot read audio (")
    assert lines_of_error[-1].endswith(
        " (libsndfile reads uncompressed SPHERE only: a shorten-compressed file needs sph2pipe, e.g. wav.scp entries "
        "'<utt> sph2pipe -f wav <file> |' written by your own local/data.sh)"
    )
    assert not (tmp_path / "data").exists()
    trn.write_text("\n".join(lines[2:24]) + "\n")  # george's 3_*_11 has audio but no line now
    spk.write_text("".join(f"{line.split()[0]} {line.split('_')[1]}\n" for line in lines[2:24]))
    (train / "broken.sph").unlink()
    (train / "stray.wav").unlink()
    with pytest.raises(CorpusError) as e:
        folder.prepare_folder(corpus, tmp_path / "data")
    assert str(e.value).splitlines()[1:] == [
        f"{trn}: 1 audio file(s) have no line, e.g. {train / 'george' / '3_george_11.wav'}: add them, or move them "
        "out of the folder"
    ]


def test_a_dev_set_of_whole_speakers_is_held_out_of_train(corpus, tmp_path):
    counts = folder.prepare_folder(corpus, tmp_path / "data", dev_from="train", dev_speakers=1, seed=3)
    data = tmp_path / "data"
    spk = {s: set(read_kv(data / s / "utt2spk").values()) for s in ("train", "train_nodev", "train_dev")}
    assert len(spk["train_dev"]) == 1 and spk["train_nodev"] | spk["train_dev"] == spk["train"]
    assert not spk["train_nodev"] & spk["train_dev"]
    assert counts["train_nodev"] == 18 and counts["train_dev"] == 6
    first = (data / "train_dev" / "wav.scp").read_bytes()
    folder.prepare_folder(corpus, tmp_path / "again", dev_from="train", dev_speakers=1, seed=3)
    assert (tmp_path / "again" / "train_dev" / "wav.scp").read_bytes() == first
