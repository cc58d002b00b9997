"""WhisperLogMel against transformers' numpy Whisper feature extractor, and its filters against librosa's.

Tolerance 1e-4 on features: ours runs the FFT in float32, the reference in numpy float64 (cast to float32
at the end).  Features are log10(power) / 4, so a relative power error e moves a feature by e / (4 ln 10);
the (max - 8) floor keeps only bins within 8 decades of the peak, where float32 round-off of the FFT,
relative to the frame's energy, stays well under 1e-3.  Measured: ~4e-6.
"""

import librosa
import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from cald_asr.frontend import WhisperLogMel

TOL = 1e-4


@pytest.fixture(scope="module")
def frontend():
    return WhisperLogMel(n_mels=80)


@pytest.fixture(scope="module")
def extractor():
    return WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, n_fft=400)


def numpy_reference(extractor, wav: np.ndarray) -> np.ndarray:
    # The numpy path on the unpadded clip ("longest" padding of a single clip is no padding); the public
    # __call__ would pick the torch path whenever torch is installed.
    return extractor._np_extract_fbank_features(wav[None].astype(np.float32), "cpu")[0].T  # (T, 80)


def ours(frontend, wav: np.ndarray) -> np.ndarray:
    feats, lengths = frontend(torch.from_numpy(wav)[None])
    assert feats.shape[1] == int(lengths[0]) == len(wav) // 160
    return feats[0].numpy()


def test_filters_are_librosa_slaney_rounded_once():
    """librosa's Slaney bank in float64, rounded to float32 once: its float32 default rounds twice, and 118 of
    the 80-mel bank's entries then differ (the features by up to 2.4e-7)."""
    for n_mels in (80, 128):
        ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels, htk=False, norm="slaney", dtype=np.float64)
        assert torch.equal(WhisperLogMel(n_mels).mel_filters, torch.from_numpy(ref.astype(np.float32)))


def test_single_clip_matches_whisper_extractor(frontend, extractor, fsdd_16k):
    wav = fsdd_16k("3_jackson_0.wav")
    ref = numpy_reference(extractor, wav)
    got = ours(frontend, wav)
    assert got.shape == ref.shape == (len(wav) // 160, 80)
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)
    # Not trivially flat: the clamp leaves a real dynamic range of 8 decades / 4 = 2.
    assert got.max() - got.min() == pytest.approx(2.0, abs=1e-5)


# The last kept frame reaches 40 - (n % 160) samples past the end when n % 160 < 40: 480 and 16020
# exercise the reflection at the end; 201 is the shortest Whisper's centred STFT accepts.
@pytest.mark.parametrize("n", [201, 399, 400, 480, 16020, 16159])
def test_frame_count_and_values_for_odd_lengths(frontend, extractor, n):
    rng = np.random.default_rng(n)
    wav = (0.1 * rng.standard_normal(n)).astype(np.float32)
    np.testing.assert_allclose(ours(frontend, wav), numpy_reference(extractor, wav), atol=TOL, rtol=0)


def test_30s_padded_input_matches_whisper_default_pipeline(frontend, extractor, fsdd_16k):
    """Whisper pads audio with zeros to 30 s before the STFT; doing the same here gives its 3000 frames."""
    wav = fsdd_16k("0_george_5.wav")
    ref = extractor(wav, sampling_rate=16000, return_tensors="np")["input_features"][0].T  # default: pad to 30 s
    padded = np.zeros(480000, np.float32)
    padded[: len(wav)] = wav
    got = ours(frontend, padded)
    assert got.shape == ref.shape == (3000, 80)
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


def test_batch_equals_each_utterance_alone(frontend, fsdd_16k):
    # The second clip is 40 dB quieter: its (max - 8) floor must come from its own frames, not the batch.
    # The third is cut to a multiple of 160 samples so its last frame reflects about its own end.
    third = fsdd_16k("5_nicolas_40.wav")
    clips = [fsdd_16k("0_george_5.wav"), 0.01 * fsdd_16k("7_theo_12.wav"), third[: len(third) // 160 * 160]]
    lengths = torch.tensor([len(c) for c in clips])
    batch = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        # Garbage after the valid samples must not leak in.
        batch[i] = torch.from_numpy(np.resize(c, batch.shape[1]))
    feats, feat_lengths = frontend(batch, lengths)
    assert feat_lengths.tolist() == [len(c) // 160 for c in clips]
    assert feats.shape == (3, max(len(c) for c in clips) // 160, 80)
    for i, c in enumerate(clips):
        alone, _ = frontend(torch.from_numpy(c)[None])
        n = int(feat_lengths[i])
        torch.testing.assert_close(feats[i, :n], alone[0], atol=1e-5, rtol=0)
        assert torch.all(feats[i, n:] == 0)


def test_bad_lengths_name_the_utterance(frontend):
    wav = torch.zeros(2, 1000)
    with pytest.raises(ValueError, match=r"utterances \[1\].*too short"):
        frontend(wav, torch.tensor([1000, 150]))
    with pytest.raises(ValueError, match=r"utterances \[0\].*> padded length"):
        frontend(wav, torch.tensor([1001, 500]))
    with pytest.raises(TypeError):
        frontend(torch.zeros(1, 1000, dtype=torch.int16))
