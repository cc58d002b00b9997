import subprocess
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "utils"


@pytest.fixture
def run_bash():
    """Run a bash snippet with utils/ reachable as ./utils; returns CompletedProcess."""

    def _run(script: str, args=(), cwd=None):
        return subprocess.run(
            ["bash", "-c", script, "snippet", *args],
            cwd=cwd or UTILS.parent,
            capture_output=True,
            text=True,
        )

    return _run
