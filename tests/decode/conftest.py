"""Fixtures for the decoding tests: tiny seeded models saved in our model format, and real yesno audio.

The models are untrained (random, seeded): these fixtures serve tests of plumbing and of exact
equalities (API == CLI, batch == alone, windowed == one pass), which hold for any weights. Accuracy
is checked on a recipe-trained model in test_trained_yesno.py (opt-in, marker "recipe").
"""

from pathlib import Path

import pytest
import torch

from cald_asr.convert import convert_model
from cald_asr.data.audio import load_audio, write_wav
from cald_asr.data.kaldi_dir import write_kv
from cald_asr.models.model_file import save_model

from decode_util import save_seeded, tiny_config


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory) -> Path:
    """A 1-layer Whisper-shaped CTC transformer (attention: windowed for long inputs in auto mode)."""
    return save_seeded(tiny_config(), tmp_path_factory.mktemp("teacher"), seed=0, head_gain=8.0)


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory, teacher_dir) -> Path:
    """The teacher converted to BiMamba2 (a linear-time student: one pass in auto mode)."""
    from cald_asr.models.model_file import load_model

    model, config = load_model(teacher_dir)
    torch.manual_seed(1)
    conf = {"d_state": 8, "headdim": 16}
    convert_model(model, "bimamba2", conf)
    return save_model(model, {**config, "mixer": "bimamba2", "mixer_conf": conf}, tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="session")
def yesno16k(tmp_path_factory, yesno_dir):
    """Six real yesno recordings at 16 kHz (as stage 2 dumps them): (dir, {utt: path}, {utt: samples})."""
    d = tmp_path_factory.mktemp("yesno16k")
    names = sorted(p.stem for p in (yesno_dir / "waves_yesno").glob("*.wav"))[:6]
    wavs, audio = {}, {}
    for n in names:
        x, _ = load_audio(str(yesno_dir / "waves_yesno" / f"{n}.wav"), target_fs=16000)
        utt = f"yesno-{n}"
        write_wav(d / f"{utt}.wav", x, 16000)
        wavs[utt] = str(d / f"{utt}.wav")
        audio[utt] = load_audio(wavs[utt])[0]  # what the decoder reads back (16-bit rounding included)
    write_kv(d / "wav.scp", wavs)
    write_kv(d / "text", {u: " ".join("YES" if c == "1" else "NO" for c in u[6:].split("_")) for u in wavs})
    return d, wavs, audio
