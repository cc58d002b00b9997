"""Waveform augmentation against hand computations on short signals: the SNR of a mixture, the spectra of
coloured noise, the energy and decay of a synthetic room impulse response, the duration and pitch after a
speed change; the same (seed, epoch, utterance) gives the same augmentation, whatever ran before."""

import math

import numpy as np
import pytest

from cald_asr.data.augment import (
    Augmenter,
    coloured_noise,
    mix_at_snr,
    power,
    reverberate,
    speed_length,
    speed_perturb,
    synthetic_rir,
)

FS = 16000


def tone(freq, seconds=0.5, fs=FS):
    return (0.3 * np.sin(2 * math.pi * freq * np.arange(int(seconds * fs)) / fs)).astype(np.float32)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_mixture_has_the_asked_snr(snr_db):
    rng = np.random.default_rng(0)
    x = tone(440)
    noise = rng.standard_normal(x.shape[0])
    y = mix_at_snr(x, noise, snr_db)
    measured = 10 * math.log10(power(x) / power(y.astype(np.float64) - x))
    assert abs(measured - snr_db) < 1e-4  # float32 rounding of the mixture only


def test_silence_is_not_mixed():
    x = np.zeros(100, np.float32)
    assert mix_at_snr(x, np.ones(100), 10.0) is x


def band_power(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.shape[0], 1 / FS)
    return spec[(f >= lo) & (f < hi)].sum()


@pytest.mark.parametrize("colour,beta", [("white", 0.0), ("pink", 1.0), ("brown", 2.0)])
def test_coloured_noise_power_falls_as_one_over_f_to_the_beta(colour, beta):
    n = coloured_noise(FS * 4, beta, np.random.default_rng(1))
    assert abs(power(n) - 1.0) < 1e-9
    # power in an octave band of a 1/f^beta spectrum: integral of f^-beta over [f, 2f], i.e. per octave up
    # the ratio 2^(1 - beta): 2 for white, 1 for pink, 1/2 for brown
    low, high = band_power(n, 500, 1000), band_power(n, 1000, 2000)
    assert high / low == pytest.approx(2 ** (1 - beta), rel=0.15)


def test_room_impulse_response_energy_and_decay():
    rt60 = 0.5
    h = synthetic_rir(FS, rt60, np.random.default_rng(2))
    assert h.shape == (int(rt60 * FS),) and abs(np.sum(h * h) - 1.0) < 1e-12
    assert np.argmax(np.abs(h)) == 0, "the direct path is the strongest arrival"
    assert h[0] ** 2 / np.sum(h[1:] ** 2) == pytest.approx(1.0, rel=1e-9), "direct to reverberant: 0 dB"
    # Schroeder's backward integral: its slope from -5 to -25 dB, extrapolated to -60 dB, is the RT60 (T20)
    edc = 10 * np.log10(np.cumsum((h[1:] ** 2)[::-1])[::-1] / np.sum(h[1:] ** 2))
    t5, t25 = np.argmax(edc <= -5) / FS, np.argmax(edc <= -25) / FS
    assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.1)


def test_reverberation_keeps_length_and_level():
    x = tone(300)
    y = reverberate(x, synthetic_rir(FS, 0.3, np.random.default_rng(3)))
    assert y.shape == x.shape and power(y) == pytest.approx(power(x), rel=1e-5)
    assert not np.allclose(y, x, atol=1e-3)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_duration_and_pitch(factor):
    x = tone(1000, seconds=1.0)
    y = speed_perturb(x, factor, FS)
    assert y.shape[0] == speed_length(x.shape[0], factor) == round(x.shape[0] / factor)
    spec = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(y.shape[0] - 2000)))
    peak = np.fft.rfftfreq(y.shape[0] - 2000, 1 / FS)[np.argmax(spec)]
    assert peak == pytest.approx(1000 * factor, abs=2.0)


CONF = {"speed": {"prob": 0.5}, "reverb": {"prob": 0.5}, "noise": {"prob": 0.5}, "babble": {"prob": 0.5}}


def pool_of(waves):
    return lambda j: waves[j]


def test_same_key_same_augmentation_and_lengths_known_before():
    waves = [tone(200 + 50 * i, 0.3 + 0.05 * i) for i in range(6)]
    aug = Augmenter(CONF, FS, seed=7, pool=pool_of(waves), pool_size=len(waves))
    again = Augmenter(CONF, FS, seed=7, pool=pool_of(waves), pool_size=len(waves))
    outs = {}
    for epoch in (0, 1):
        for i, x in enumerate(waves):
            y = aug(x, epoch, i)
            assert np.array_equal(y, again(x, epoch, i)), "a fresh augmenter (a resumed run) draws the same"
            assert y.shape[0] == aug.length(x.shape[0], epoch, i), "the length the trainer normalises by"
            outs[epoch, i] = y
    changed = sum(not np.array_equal(outs[0, i], outs[1, i]) for i in range(6))
    assert changed >= 4, "another epoch, other draws"
    other_seed = Augmenter(CONF, FS, seed=8, pool=pool_of(waves), pool_size=len(waves))
    assert any(not np.array_equal(outs[0, i], other_seed(waves[i], 0, i)) for i in range(6))


def test_babble_mixes_other_utterances_only():
    waves = [np.zeros(4000, np.float32) for _ in range(4)]
    waves[2] = tone(700, 0.25)
    conf = {"babble": {"prob": 1.0, "snr_db": [10, 10], "utterances": [1, 1]}}
    aug = Augmenter(conf, FS, seed=0, pool=pool_of(waves), pool_size=4)
    # utterance 2 is the only one with sound: babble from the others (silence) leaves it as it is
    assert np.array_equal(aug(waves[2], 0, 2), waves[2])
    with pytest.raises(ValueError, match="babble needs other training utterances"):
        Augmenter(conf, FS, seed=0)
