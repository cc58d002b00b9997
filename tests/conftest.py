"""Fixtures shared by every test folder: the real corpora from ../shared/data."""

import numpy as np
import pytest
import soundfile as sf
import soxr

from shared_data import SHARED_DATA


def _shared(name: str):
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared corpus {path} not present")
    return path


@pytest.fixture(scope="session")
def fsdd_dir():
    return _shared("fsdd")


@pytest.fixture(scope="session")
def an4_dir():
    return _shared("an4_mfcc")


@pytest.fixture(scope="session")
def yesno_dir():
    return _shared("yesno")


@pytest.fixture(scope="session")
def fsdd_16k():
    """Load a Free Spoken Digit clip (8 kHz) resampled to 16 kHz, float32 in [-1, 1]."""
    recordings = _shared("fsdd") / "recordings"

    def load(name: str) -> np.ndarray:
        wav, sr = sf.read(recordings / name, dtype="float32")
        assert sr == 8000, f"{name}: expected 8 kHz, got {sr}"
        return soxr.resample(wav, 8000, 16000).astype(np.float32)

    return load
