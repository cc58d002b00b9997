"""benchmarks/gpu_setup.py: importing mamba-ssm's Triton SSD module when the package's __init__ cannot
run (installed without its compiled extension). Checked on a stand-in package of the same layout:
the real one needs CUDA and Triton, which CI lacks."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_gpu_setup", ROOT / "benchmarks" / "gpu_setup.py")
gpu_setup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_setup)


def _package(root: Path, init: str, ssd: str) -> None:
    pkg = root / "mamba_ssm"
    (pkg / "ops" / "triton").mkdir(parents=True)
    (pkg / "__init__.py").write_text(init)
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "triton" / "__init__.py").write_text("")
    (pkg / "ops" / "triton" / "ssd_combined.py").write_text(ssd)
    (pkg / "ops" / "selective_scan_interface.py").write_text("import selective_scan_cuda\n")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """sys.path with tmp_path first and no mamba_ssm modules; both restored afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = {k: v for k, v in sys.modules.items() if k == "mamba_ssm" or k.startswith("mamba_ssm.")}
    for k in saved:
        del sys.modules[k]
    importlib.invalidate_caches()
    yield tmp_path
    for k in [k for k in sys.modules if k == "mamba_ssm" or k.startswith("mamba_ssm.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def test_full_import(isolated):
    _package(isolated, "__version__ = '9'\n", "def mamba_chunk_scan_combined(): return 'kernel'\n")
    assert gpu_setup.enable_mamba_ssm() == "full"


def test_triton_ssd_without_the_compiled_extension(isolated):
    _package(
        isolated,
        "from mamba_ssm.ops.selective_scan_interface import *\n",
        "def mamba_chunk_scan_combined(): return 'kernel'\n",
    )
    assert gpu_setup.enable_mamba_ssm() == "triton-ssd-only"
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    assert mamba_chunk_scan_combined() == "kernel"
    with pytest.raises(ImportError, match="selective_scan_cuda"):  # Mamba (v1) kernels say why they fail
        importlib.import_module("mamba_ssm.ops.selective_scan_interface")


def test_nothing_usable(isolated):
    _package(isolated, "import selective_scan_cuda\n", "import triton_that_is_not_there\n")
    status = gpu_setup.enable_mamba_ssm()
    assert status.startswith("absent:") and "selective_scan_cuda" in status and "triton_that_is_not_there" in status
    assert "mamba_ssm" not in sys.modules
