import numpy as np
import pytest
import soundfile as sf

from cald_asr.data.audio import AudioError, load_audio, write_wav

from datalayer_util import FSDD

GEORGE = FSDD / "0_george_0.wav"


def peak_hz(x: np.ndarray, fs: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / fs)[np.argmax(spec)])


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def test_real_fsdd_file_loads_as_float_mono_8k():
    x, fs = load_audio(str(GEORGE))
    pcm, fs_ref = sf.read(GEORGE, dtype="int16")
    assert fs == fs_ref == 8000
    assert x.dtype == np.float32 and x.shape == pcm.shape == (sf.info(GEORGE).frames,)
    np.testing.assert_array_equal(x, pcm.astype(np.float32) / 32768)


def test_resampling_8k_to_16k_keeps_sine_frequency_and_level(tmp_path):
    fs_in, f0, dur = 8000, 1234.0, 1.0
    t = np.arange(int(fs_in * dur)) / fs_in
    path = tmp_path / "sine.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * f0 * t), fs_in, subtype="FLOAT")
    y, fs = load_audio(str(path), target_fs=16000)
    assert fs == 16000 and y.dtype == np.float32
    assert abs(len(y) - 2 * len(t)) <= 1
    # FFT bin width is 1 Hz for a 1 s signal: the peak must stay in the same bin.
    assert abs(peak_hz(y, fs) - f0) <= 1.0
    mid = y[1000:-1000]  # away from the filter's edge transients
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    # Nothing may appear above the old Nyquist frequency (4 kHz): soxr's anti-imaging filter.
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / fs)
    assert spec[freqs > 4200].max() < 1e-3 * spec.max()


def test_real_fsdd_resampled_up_and_back_matches_original():
    x, _ = load_audio(str(GEORGE))
    y, fs = load_audio(str(GEORGE), target_fs=16000)
    assert fs == 16000 and len(y) == 2 * len(x)
    from cald_asr.data.audio import resample

    back = resample(y, 16000, 8000)
    # The round trip is not perfect only near 4 kHz, where the filters roll off.
    assert snr_db(x[200:-200], back[200:-200]) > 30


def test_pipe_entry_gives_same_samples_as_file():
    direct, fs = load_audio(str(GEORGE))
    piped, fs_p = load_audio(f"cat {GEORGE} |")
    assert fs_p == fs
    np.testing.assert_array_equal(piped, direct)


def test_pipe_entry_resampled():
    y, fs = load_audio(f"cat {GEORGE} |", target_fs=16000)
    z, _ = load_audio(str(GEORGE), target_fs=16000)
    assert fs == 16000
    np.testing.assert_array_equal(y, z)


def test_failing_pipe_names_command_and_status():
    with pytest.raises(AudioError, match=r"pipe 'cat /nonexistent/x.wav \|': command failed with exit status 1"):
        load_audio("cat /nonexistent/x.wav |")


def test_pipe_writing_nothing_is_empty():
    with pytest.raises(AudioError, match="empty audio"):
        load_audio("true |")


def test_missing_file_names_path(tmp_path):
    with pytest.raises(AudioError, match=f"'{tmp_path / 'nope.wav'}': file does not exist"):
        load_audio(str(tmp_path / "nope.wav"))


def test_not_audio_names_path(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage that is not a wave file")
    with pytest.raises(AudioError, match=f"'{bad}': not a readable audio file"):
        load_audio(str(bad))


def test_empty_audio(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty audio"):
        load_audio(str(empty))


def test_multichannel_takes_channel_zero_by_default(tmp_path):
    x, fs = load_audio(str(GEORGE))
    stereo = np.stack([x, -0.5 * x], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, fs, subtype="FLOAT")
    left, _ = load_audio(str(path))
    np.testing.assert_array_equal(left, x)
    right, _ = load_audio(str(path), channel=1)
    np.testing.assert_array_equal(right, -0.5 * x)
    with pytest.raises(AudioError, match="channel 2 requested but the audio has 2 channel"):
        load_audio(str(path), channel=2)


def test_write_wav_is_16bit_and_clips(tmp_path):
    path = tmp_path / "out" / "clip.wav"
    write_wav(path, np.array([0.0, 0.5, 1.5, -2.0], dtype=np.float32), 16000)
    info = sf.info(path)
    assert (info.samplerate, info.subtype) == (16000, "PCM_16")
    pcm, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(pcm, [0, 16384, 32767, -32768])
