"""Fixtures for the data-layer tests."""

from pathlib import Path

import pytest

from datalayer_util import write_fsdd_dir


@pytest.fixture
def small_fsdd_data_dir(tmp_path) -> Path:
    d = tmp_path / "fsdd"
    write_fsdd_dir(d, ["0_george_0", "1_george_0", "2_jackson_0", "3_jackson_0"])
    return d
