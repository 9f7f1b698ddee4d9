"""The CPU a figure was measured on: benchmarks print it and training records it, because the
2-core machine behind this project's figures is not always the same one, and its vector
extensions decide more of the speed (and, for int8 without VNNI, of the results) than its name."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["CPU_FEATURES", "cpu_name", "cpu_features", "cpu_features_text", "describe_cpu"]

# The x86 extensions that change what this project's kernels run: AVX2 is the floor of the
# int8 and float paths, AVX-512 doubles their width, VNNI sums int8 products without the
# 16-bit saturation of AVX2, and AVX-512 BF16 / AMX make bf16 training pay.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""


def cpu_name() -> str:
    """The processor's model name (Linux keeps the marketing name in /proc/cpuinfo only)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_features() -> tuple[str, ...] | None:
    """Those of `CPU_FEATURES` the CPU has, in that order; None where the OS does not say."""
    words = set(_cpuinfo().split())
    return tuple(f for f in CPU_FEATURES if f in words) if words else None


def cpu_features_text() -> str:
    """`cpu_features` for a reader: "avx2, avx512f", "no AVX2" or "extensions unknown"."""
    features = cpu_features()
    return "extensions unknown" if features is None else ", ".join(features) or "no AVX2"


def describe_cpu() -> str:
    """One line for a benchmark's header: name, CPU count and vector extensions."""
    return f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs; {cpu_features_text()}"
