"""Data dirs without transcripts (audio for task: layer_distillation): validate_data_dir --no_text,
format_data --no_text and ASRDataset without a tokenizer read them; everything else is checked as always."""

import numpy as np
import pytest
import soundfile as sf
import torch

from cald_asr.bin import validate_data_dir as cli
from cald_asr.bin.format_data import main as format_main
from cald_asr.data.audio import load_audio, resample
from cald_asr.data.collate import pad_collate
from cald_asr.data.dataset import ASRDataset
from cald_asr.data.kaldi_dir import DataDirError, read_kv, utt2spk_to_spk2utt, write_kv
from cald_asr.data.validate import fix_data_dir, validate_data_dir
from cald_asr.text import CharTokenizer, TokenList

from datalayer_util import YESNO, write_yesno_dir, yesno_names

YESNO_TOKENS = TokenList.build(["<space>", "E", "N", "O", "S", "Y"])


def write_audio_only_dir(d, n=4, specs=None):
    """Only wav.scp, over the first n real yesno recordings; `specs` replaces some values. Returns it."""
    wav = {f"yesno_{name}": str(YESNO / f"{name}.wav") for name in yesno_names(n)}
    wav.update(specs or {})
    write_kv(d / "wav.scp", wav)
    return wav


def format_run(in_dir, out_dir, *extra):
    return format_main(["--in_dir", str(in_dir), "--out_dir", str(out_dir), "--fs", "16000", "--nj", "1", *extra])


def test_wav_scp_only_dir_is_valid_with_no_text_only(tmp_path, capsys):
    d = tmp_path / "unlabeled"
    write_audio_only_dir(d)
    assert validate_data_dir(d, no_text=True) == []
    assert validate_data_dir(d, check_audio=True, no_text=True) == []
    assert validate_data_dir(d) == [f"{d / n}: missing file" for n in ("text", "utt2spk", "spk2utt")]
    assert cli.main([str(d), "--no_text", "--check_audio"]) == 0
    assert cli.main([str(d), "--no-text"]) == 0
    capsys.readouterr()
    assert cli.main([str(d)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"{d / n}: missing file" for n in ("text", "utt2spk", "spk2utt")]


def test_no_text_still_checks_order_ids_audio_and_rates(tmp_path):
    names = yesno_names(4)
    x, fs = sf.read(YESNO / f"{names[1]}.wav", dtype="float32")
    x[[10, 500]] = np.nan
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, x, fs, subtype="FLOAT")
    fast = tmp_path / "16k.wav"
    sf.write(fast, resample(load_audio(str(YESNO / f"{names[2]}.wav"))[0], 8000, 16000), 16000, subtype="PCM_16")
    d = tmp_path / "unlabeled"
    d.mkdir()
    lines = [
        f"yesno_{names[0]} {YESNO / f'{names[0]}.wav'}",
        f"yesno_{names[2]} {fast}",
        f"yesno_{names[1]} {nan_wav}",  # out of order
        f"yesno_{names[3]} {tmp_path / 'gone.wav'}",
    ]
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    scp = d / "wav.scp"
    assert validate_data_dir(d, no_text=True) == [
        f"{scp}:3: not sorted (C locale): 'yesno_{names[1]}' comes after 'yesno_{names[2]}' on line 2"
    ]
    assert validate_data_dir(d, check_audio=True, no_text=True) == [
        f"{scp}:3: not sorted (C locale): 'yesno_{names[1]}' comes after 'yesno_{names[2]}' on line 2",
        f"{scp}:3: 'yesno_{names[1]}': '{nan_wav}': 2 of {len(x)} samples are NaN or infinite (non-finite audio)",
        f"{scp}:4: 'yesno_{names[3]}': '{tmp_path / 'gone.wav'}': file does not exist",
        f"{scp}:2: 'yesno_{names[2]}': sample rate 16000 Hz, expected 8000 Hz (the rate of 1 of 2 wav.scp entries)",
    ]

    log = tmp_path / "fix.log"  # fixing keeps the dir audio-only: no text, utt2spk or spk2utt appear
    dropped = fix_data_dir(d, log, check_audio=True, fs=8000, no_text=True)
    assert sorted(dropped) == [f"yesno_{n}" for n in sorted(names[1:])]
    assert read_kv(scp) == {f"yesno_{names[0]}": str(YESNO / f"{names[0]}.wav")}
    assert sorted(p.name for p in d.iterdir()) == [".backup", "wav.scp"]
    assert validate_data_dir(d, check_audio=True, no_text=True) == []


def test_no_text_with_segments_and_with_partial_files(tmp_path):
    name = yesno_names(1)[0]
    d = tmp_path / "sessions"
    write_kv(d / "wav.scp", {"yesno_rec": str(YESNO / f"{name}.wav")})
    write_kv(d / "segments", {"yesno_rec_a": "yesno_rec 0.0 3.0", "yesno_rec_b": "yesno_rec 3.0 6.0"})
    assert validate_data_dir(d, check_audio=True, no_text=True) == []
    write_kv(d / "utt2spk", {"yesno_rec_a": "yesno"})  # without spk2utt, and missing an utterance
    assert validate_data_dir(d, no_text=True) == [
        f"{d / 'spk2utt'}: missing file (utt2spk is there; they come together)",
        f"{d / 'segments'}:2: utterance 'yesno_rec_b' is not in utt2spk",
    ]
    (d / "utt2spk").unlink()
    write_kv(d / "text", {"yesno_rec_a": "NO NO", "yesno_rec_b": ""})  # a text that is there is checked
    assert validate_data_dir(d, no_text=True) == [f"{d / 'text'}:2: empty transcript for utterance 'yesno_rec_b'"]


def test_format_audio_only_dir_into_a_dump_the_dataset_reads(tmp_path, capsys):
    names = yesno_names(6)
    gone = tmp_path / "gone.wav"
    src = tmp_path / "unlabeled"
    wav = write_audio_only_dir(src, 6, {"yesno_zz_broken": str(gone)})
    durs = {f"yesno_{n}": sf.info(YESNO / f"{n}.wav").duration for n in names}
    by_len = sorted(durs, key=durs.get)
    min_sec = (durs[by_len[0]] + durs[by_len[1]]) / 2
    max_sec = (durs[by_len[-2]] + durs[by_len[-1]]) / 2

    out = tmp_path / "dump"
    assert format_run(src, out, "--filter", "--min_sec", str(min_sec), "--max_sec", str(max_sec)) == 1
    assert f"{src / 'text'}: missing file" in capsys.readouterr().err
    args = ("--filter", "--min_sec", str(min_sec), "--max_sec", str(max_sec), "--no_text")
    assert format_run(src, out, *args) == 0
    summary = capsys.readouterr().out
    assert "kept 4 of 7 utterance(s)" in summary
    assert "dropped 3 (broken audio 1, too long 1, too short 1)" in summary
    log = dict(line.split(" ", 1) for line in (out / "dropped.log").read_text().splitlines())
    assert log["yesno_zz_broken"] == f"broken audio: '{gone}': file does not exist"
    assert log[by_len[0]].startswith("too short: ") and log[by_len[-1]].startswith("too long: ")

    kept = sorted(by_len[1:-1])
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        ".done",
        "dropped.log",
        "feats_type",
        "spk2utt",
        "utt2num_samples",
        "utt2spk",
        "wav.scp",
    ]
    assert read_kv(out / "utt2spk") == read_kv(out / "spk2utt") == {u: u for u in kept}
    assert validate_data_dir(out, check_audio=True, no_text=True) == []

    ds = ASRDataset(out)
    assert ds.utt_ids == kept
    num_samples = read_kv(out / "utt2num_samples")
    assert ds.lengths == [int(num_samples[u]) for u in kept]
    for i, utt in enumerate(kept):
        item = ds[i]
        assert item["utt_id"] == utt and item["text_ids"].tolist() == []
        assert item["speech"].dtype == torch.float32 and item["speech"].shape == (ds.lengths[i],)
        assert ds.lengths[i] == 2 * sf.info(wav[utt]).frames  # 8 kHz to 16 kHz
        original = load_audio(wav[utt])[0]
        back = resample(item["speech"].numpy(), 16000, 8000)
        err = original[200:-200] - back[200:-200]
        assert 10 * np.log10(np.sum(original[200:-200] ** 2) / np.sum(err**2)) > 30
    batch = pad_collate([ds[0], ds[1]])
    assert batch["text"].shape == (2, 0) and batch["text_lengths"].tolist() == [0, 0]
    assert batch["speech_lengths"].tolist() == ds.lengths[:2]

    assert format_run(src, out, *args) == 0
    assert "up to date" in capsys.readouterr().out
    assert format_run(src, out, *args[:-1]) == 1  # without --no_text the old dump does not count: text is missing


def test_dataset_with_a_tokenizer_needs_text(tmp_path):
    d = tmp_path / "unlabeled"
    write_audio_only_dir(d)
    with pytest.raises(DataDirError) as e:
        ASRDataset(d, CharTokenizer(YESNO_TOKENS))
    assert str(e.value) == (
        f"{d} has no text: transcripts are needed to train this task; a dir with only audio is for task: "
        "layer_distillation (conf/cald/unlabeled.yaml)"
    )


def test_dataset_reads_raw_audio_only_dirs_with_segments(tmp_path):
    name = yesno_names(1)[0]
    d = tmp_path / "sessions"
    write_kv(d / "wav.scp", {"yesno_rec": str(YESNO / f"{name}.wav")})
    write_kv(d / "segments", {"yesno_rec_b": "yesno_rec 3.0 -1", "yesno_rec_a": "yesno_rec 0.5 3.0"})
    ds = ASRDataset(d)
    x = load_audio(str(YESNO / f"{name}.wav"))[0]
    assert ds.utt_ids == ["yesno_rec_a", "yesno_rec_b"]
    assert ds.lengths == [20000, len(x) - 24000]
    np.testing.assert_array_equal(ds[0]["speech"].numpy(), x[4000:24000])
    assert ds[1]["text_ids"].tolist() == []


def test_speakers_are_kept_when_given_and_text_replaced_when_gone(tmp_path):
    src = tmp_path / "in"
    write_yesno_dir(src, 3)  # text, utt2spk and spk2utt (speaker 'yesno')
    out = tmp_path / "dump"
    assert format_run(src, out, "--no_text") == 0  # a text that is there is copied
    assert read_kv(out / "text") == read_kv(src / "text")
    (src / "text").unlink()
    assert format_run(src, out, "--no_text") == 0
    assert not (out / "text").exists()  # not left from the run before
    utts = sorted(read_kv(src / "wav.scp"))
    assert read_kv(out / "utt2spk") == {u: "yesno" for u in utts}
    assert read_kv(out / "spk2utt") == utt2spk_to_spk2utt({u: "yesno" for u in utts})
    assert validate_data_dir(out, no_text=True) == []
    assert validate_data_dir(out) == [f"{out / 'text'}: missing file"]
