"""Audio with NaN or infinite samples is rejected everywhere it is read: load_audio, validation
(--check_audio decodes the samples), stage 2 (dropped and logged) and the training dataset."""

import numpy as np
import pytest
import soundfile as sf

from cald_asr.data.audio import AudioError, load_audio, scan_audio
from cald_asr.data.dataset import ASRDataset
from cald_asr.data.format_dir import FormatOptions, format_data_dir
from cald_asr.data.kaldi_dir import read_kv
from cald_asr.data.validate import validate_data_dir

from datalayer_util import YESNO, write_yesno_dir, yesno_names


def float_copy_with(tmp_path, name, positions, value, tag="bad"):
    """A real yesno recording saved as a float WAV (soundfile subtype FLOAT) with some samples replaced."""
    x, fs = sf.read(YESNO / f"{name}.wav", dtype="float32")
    x[list(positions)] = value
    path = tmp_path / f"{tag}_{name}.wav"
    sf.write(path, x, fs, subtype="FLOAT")
    return path, len(x)


@pytest.fixture
def nan_dir(tmp_path):
    """Four yesno utterances; the third one's file has 3 NaN samples."""
    name = yesno_names(4)[2]
    bad, n = float_copy_with(tmp_path, name, [100, 2000, 30000], np.nan)
    d = tmp_path / "in"
    write_yesno_dir(d, 4, {f"yesno_{name}": str(bad)})
    return d, f"yesno_{name}", bad, n


def test_load_audio_rejects_nan_and_inf_naming_file_and_count(tmp_path):
    name = yesno_names(1)[0]
    nan, n = float_copy_with(tmp_path, name, [5, 6], np.nan)
    with pytest.raises(AudioError) as e:
        load_audio(str(nan), target_fs=16000)
    assert str(e.value) == f"'{nan}': 2 of {n} samples are NaN or infinite (non-finite audio)"
    inf, _ = float_copy_with(tmp_path, name, [7], -np.inf, tag="inf")
    with pytest.raises(AudioError, match=rf"1 of {n} samples are NaN or infinite"):
        load_audio(str(inf))
    with pytest.raises(AudioError, match=rf"'cat {inf} \|': 1 of {n} samples are NaN or infinite"):
        load_audio(f"cat {inf} |")
    with pytest.raises(AudioError, match=rf"1 of {n} samples are NaN or infinite"):
        scan_audio(str(inf))


def test_scan_audio_matches_load_audio_on_a_clean_file():
    path = YESNO / f"{yesno_names(1)[0]}.wav"
    x, fs = load_audio(str(path))
    assert scan_audio(str(path)) == (fs, len(x)) == (8000, sf.info(path).frames)
    assert scan_audio(f"cat {path} |") == (8000, len(x))


def test_validation_reports_the_nan_file_with_line_and_utterance(nan_dir):
    d, utt, bad, n = nan_dir
    assert validate_data_dir(d) == []  # samples are only decoded with check_audio
    assert validate_data_dir(d, check_audio=True) == [
        f"{d / 'wav.scp'}:3: '{utt}': '{bad}': 3 of {n} samples are NaN or infinite (non-finite audio)"
    ]


def test_stage2_drops_exactly_the_nan_utterance_and_logs_it(nan_dir, tmp_path):
    d, utt, bad, n = nan_dir
    out = tmp_path / "dump"
    result = format_data_dir(d, out, FormatOptions(fs=16000, nj=1, filter=True), progress=False)
    assert set(result.dropped) == {utt}
    log = (out / "dropped.log").read_text().splitlines()
    assert log == [f"{utt} broken audio: '{bad}': 3 of {n} samples are NaN or infinite (non-finite audio)"]
    kept = sorted(u for u in read_kv(d / "text") if u != utt)
    assert result.kept == kept and list(read_kv(out / "wav.scp")) == kept
    assert not (out / "data" / f"{utt}.wav").exists()
    for path in read_kv(out / "wav.scp").values():
        assert np.isfinite(sf.read(path)[0]).all()
    assert validate_data_dir(out, check_audio=True) == []


def test_dataset_reading_the_nan_file_names_the_utterance(nan_dir):
    d, utt, bad, n = nan_dir
    ds = ASRDataset(d)
    ds[0]  # the good ones still load
    with pytest.raises(AudioError) as e:
        ds[ds.utt_ids.index(utt)]
    assert str(e.value) == f"utterance '{utt}': '{bad}': 3 of {n} samples are NaN or infinite (non-finite audio)"
