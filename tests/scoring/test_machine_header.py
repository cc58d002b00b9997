"""Every RESULTS.md names its machine: CPU model, usable cores and the CPU kernel set torch runs, which
ATEN_CPU_CAPABILITY changes (the same recipe runs 1.5-2x slower on one x86-64 CPU than another)."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from cald_asr.report.machine import cpu_model, describe_machine, usable_cores
from cald_asr.report.sections import env_header


def test_header_names_cpu_cores_and_kernel_set(tmp_path):
    line = next(x for x in env_header(tmp_path / "egs" / "x" / "asr1") if x.startswith("- machine: "))
    assert line == f"- machine: {describe_machine()}"
    assert cpu_model() in line and f"{usable_cores()} cores usable of {os.cpu_count()}" in line
    assert f"torch CPU kernels {torch.backends.cpu.get_cpu_capability()}" in line
    if Path("/proc/cpuinfo").is_file():
        names = [
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        ]
        assert names and cpu_model() == names[0]


def test_kernel_set_follows_aten_cpu_capability():
    code = "from cald_asr.report.machine import describe_machine; print(describe_machine())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ATEN_CPU_CAPABILITY": "default"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "torch CPU kernels DEFAULT" in out.stdout
