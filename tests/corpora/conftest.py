import os
from pathlib import Path

import pytest

# The recipes' default: shared data next to the project root.
SHARED_DATA = Path(os.environ.get("CALD_ASR_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared corpus {path} not present")
    return path


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return _shared("fsdd")


@pytest.fixture(scope="session")
def an4_dir() -> Path:
    return _shared("an4_mfcc")


@pytest.fixture(scope="session")
def yesno_dir() -> Path:
    return _shared("yesno")
