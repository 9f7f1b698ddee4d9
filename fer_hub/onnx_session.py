"""The one way fer_hub opens an onnxruntime session on the CPU (the detector's, the classifier's).

A photo runs two small networks back to back, each a few milliseconds of many short operators.
onnxruntime's worker threads, left to sleep between operators, pay a wake-up for each of them;
left spinning after a run (its default), they keep the cores from the next network and from
Python, and the classifier right after the detector slows down severalfold. So the threads spin
while a run lasts and stop when it returns (`force_spinning_stop`): each network runs faster
than with spinning off, and nothing after it runs slower (`benchmarks/bench_predict.py`).
"""

from __future__ import annotations

import os

__all__ = ["cpu_session"]


def cpu_session(path: str | os.PathLike, threads: int | None = None):
    """An `onnxruntime.InferenceSession` for the ONNX file at `path` on the CPU, with at most
    `threads` intra-op threads (None: onnxruntime's choice, one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
