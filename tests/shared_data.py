"""Where the tests find the real shared corpora: CALD_ASR_SHARED_DATA, else ../shared/data beside the
project root (the recipes' default; CI lays a copy there)."""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("CALD_ASR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
