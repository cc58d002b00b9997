"""mamba-ssm on a bare CUDA machine, for benchmarks/gpu_encoders.sh.

A mamba-ssm installed without its compiled CUDA extension (MAMBA_SKIP_CUDA_BUILD: building it takes
longer than a benchmark run may) cannot be imported as a package, because mamba_ssm/__init__.py
imports the compiled selective scan. Its SSD kernel, the one BiMamba2 uses (cald_asr.mixers.ops.cuda_kernels:
mamba_ssm.ops.triton.ssd_combined), is Triton code and needs none of it. `enable_mamba_ssm()` imports
the package as usual where that works, else registers `mamba_ssm` without running its __init__, so
the Triton modules import on their own; Mamba (v1) kernels then stay unavailable and say so when called.

    python benchmarks/gpu_setup.py check                 # what is there; SSD kernel vs our scan on random input
    python benchmarks/gpu_setup.py pytest ARGS...        # pytest, with mamba-ssm enabled as above
    python benchmarks/gpu_setup.py bench ARGS...         # benchmarks/encoders.py, likewise
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def enable_mamba_ssm() -> str:
    """'full', 'triton-ssd-only' (see above), or 'absent: <why>'."""
    spec = importlib.util.find_spec("mamba_ssm")
    if spec is None or not spec.submodule_search_locations:
        return "absent: mamba_ssm is not installed"
    try:
        importlib.import_module("mamba_ssm")
        return "full"
    except Exception as e:  # ImportError of selective_scan_cuda, or anything else its __init__ imports
        first = f"{type(e).__name__}: {e}"
    for name in [m for m in sys.modules if m == "mamba_ssm" or m.startswith("mamba_ssm.")]:
        del sys.modules[name]  # what the failed import left half made
    pkg = types.ModuleType("mamba_ssm")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__file__ = spec.origin
    pkg.__spec__ = spec
    sys.modules["mamba_ssm"] = pkg
    try:
        importlib.import_module("mamba_ssm.ops.triton.ssd_combined")
    except Exception as e:
        del sys.modules["mamba_ssm"]
        return f"absent: import mamba_ssm failed ({first}); its Triton SSD alone too ({type(e).__name__}: {e})"
    return "triton-ssd-only"


def ssd_check() -> dict:
    """mamba-ssm's SSD kernel against our chunked scan on seeded random input (forward)."""
    import torch
    import torch.nn.functional as F

    from cald_asr.mixers.ops.cuda_kernels import ssd_kernel
    from cald_asr.mixers.ops.ssd import ssd_scan

    g = torch.Generator(device="cuda").manual_seed(0)
    b, t, h, p, n = 2, 300, 4, 32, 64
    x = torch.randn(b, t, h, p, device="cuda", generator=g)
    dt_raw = torch.randn(b, t, h, device="cuda", generator=g) - 2
    A = -torch.rand(h, device="cuda", generator=g) - 0.5
    B = torch.randn(b, t, 1, n, device="cuda", generator=g)
    C = torch.randn(b, t, 1, n, device="cuda", generator=g)
    D, dt_bias = torch.randn(h, device="cuda", generator=g), torch.zeros(h, device="cuda")
    ours = ssd_scan(x, F.softplus(dt_raw + dt_bias), A, B, C, 64, D=D)
    kern = ssd_kernel(x, dt_raw, A, B, C, 64, D, dt_bias)
    return {"max_abs_diff": float((ours - kern).abs().max()), "max_abs": float(ours.abs().max())}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv.pop(0) if argv else "check"
    status = enable_mamba_ssm()
    if cmd == "check":
        import torch

        info = {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "mamba_ssm": status,
        }
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            info["triton"] = None
        if status != "full" and not status.startswith("absent"):
            info["mamba_ssm_version"] = _version("mamba_ssm")
        elif status == "full":
            info["mamba_ssm_version"] = getattr(sys.modules["mamba_ssm"], "__version__", None)
        if torch.cuda.is_available() and not status.startswith("absent"):
            try:
                info["ssd_kernel_vs_ours"] = ssd_check()
            except Exception as e:
                info["ssd_kernel_vs_ours"] = f"{type(e).__name__}: {e}"[:500]
        print(json.dumps(info, indent=1))
        return 0
    if cmd == "pytest":
        import pytest

        return pytest.main(argv)
    if cmd == "bench":
        spec = importlib.util.spec_from_file_location("bench_encoders", ROOT / "benchmarks" / "encoders.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.main(argv)
    raise SystemExit(f"unknown command {cmd!r}: check, pytest or bench")


def _version(dist: str):
    try:
        from importlib.metadata import version

        return version(dist.replace("_", "-"))
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
