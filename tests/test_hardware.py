"""fer_hub.hardware: what a benchmark's header and a model card say about the CPU."""

from __future__ import annotations

import fer_hub.hardware as hw

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni
processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni
"""


def test_the_cpu_is_named_with_the_vector_extensions_that_decide_its_speed(monkeypatch):
    monkeypatch.setattr(hw, "_cpuinfo", lambda: XEON)
    assert hw.cpu_name() == "Intel(R) Xeon(R) Processor"
    assert hw.cpu_features() == ("avx2", "avx512f", "avx512_vnni")  # avx512bw is not one of them
    assert "Intel(R) Xeon(R) Processor" in hw.describe_cpu()
    assert hw.describe_cpu().endswith("; avx2, avx512f, avx512_vnni")


def test_a_training_run_records_the_cpu_with_its_extensions(monkeypatch):
    import torch

    from fer_hub.training.loop import device_description

    monkeypatch.setattr(hw, "_cpuinfo", lambda: XEON)
    assert device_description(torch.device("cpu")) == (
        f"Intel(R) Xeon(R) Processor ({torch.get_num_threads()} threads; avx2, avx512f, avx512_vnni)"
    )


def test_a_cpu_without_avx2_and_an_os_that_does_not_say_are_told_apart(monkeypatch):
    monkeypatch.setattr(
        hw, "_cpuinfo", lambda: XEON.replace(" avx2", "").replace(" avx512f", "").replace(" avx512_vnni", "")
    )
    assert hw.cpu_features() == () and hw.describe_cpu().endswith("; no AVX2")
    monkeypatch.setattr(hw, "_cpuinfo", lambda: "")
    monkeypatch.setattr(hw.platform, "processor", lambda: "arm")
    assert hw.cpu_features() is None and hw.cpu_name() == "arm"
    assert hw.describe_cpu().endswith("; extensions unknown")


def test_every_timing_benchmark_names_the_cpu_it_ran_on():
    # README's Speed table has one column per kind of CPU; a figure is only placeable if its
    # benchmark printed the CPU. The two exempt scripts print accuracies, not times.
    from pathlib import Path

    accuracy_only = {"bench_ood.py", "fer_framing.py"}
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    silent = [
        p.name
        for p in sorted(benchmarks.glob("*.py"))
        if p.name not in accuracy_only
        and "describe_cpu()" not in (text := p.read_text())
        and "device_description(" not in text
    ]
    assert not silent, f"print fer_hub.hardware.describe_cpu() in the header of {silent}"
