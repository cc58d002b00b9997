"""What machine a result was measured on: CPU model, cores, torch's CPU kernel set (AVX-512, AVX2 or the
portable default: ATen picks it at start-up, ATEN_CPU_CAPABILITY lowers it) and, where present, the GPU.
The same recipe trains 1.5-2x slower on one x86-64 CPU than on another (issue #22), so every RESULTS.md and
benchmark names its machine this way."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """/proc/cpuinfo's model name (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def describe_machine() -> str:
    """One line: '<cpu model>, <n> cores usable of <m>, torch CPU kernels AVX2, 2 torch threads[, GPU: ...]'."""
    text = (
        f"{cpu_model()} ({platform.machine()}), {usable_cores()} cores usable of {os.cpu_count()}, "
        f"torch CPU kernels {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} torch threads"
    )
    if torch.cuda.is_available():
        text += f", GPU: {torch.cuda.get_device_name(0)}"
    return text
