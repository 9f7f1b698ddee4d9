"""The one way fer_hub opens an onnxruntime session on the CPU (the detector's, the classifier's).

A photo runs two small networks back to back, each a few milliseconds of many short operators.
How onnxruntime's worker threads wait between operators is a trade, like OpenMP's
OMP_WAIT_POLICY, and `FER_HUB_WAIT_POLICY` sets it for the process:

- "active" (default): the threads spin while a run lasts and stop when it returns
  (`force_spinning_stop`). A program that has the cores to itself (a script, `fer-hub predict`)
  runs each network faster than with sleeping threads. Spinning after a run (onnxruntime's own
  default) would instead keep the cores from the next network and from Python, and slow the
  classifier right after the detector severalfold.
- "passive": the threads sleep between operators. A server whose requests, encoders and (on one
  machine) browsers share the cores does better: spinning threads take cycles the others need.
  The Space sets it (`space/app.py`; `benchmarks/bench_predict.py` and
  `benchmarks/bench_live_browser.py` measure both sides).

The policy is read when a session is opened.
"""

from __future__ import annotations

import os

from .errors import InputError

__all__ = ["cpu_session", "wait_policy", "WAIT_POLICY_ENV", "WAIT_POLICIES"]

WAIT_POLICY_ENV = "FER_HUB_WAIT_POLICY"
WAIT_POLICIES = ("active", "passive")


def wait_policy() -> str:
    """The process's `FER_HUB_WAIT_POLICY` ("active" when unset); InputError for any other value."""
    policy = os.environ.get(WAIT_POLICY_ENV, "active").strip().lower() or "active"
    if policy not in WAIT_POLICIES:
        raise InputError(f"{WAIT_POLICY_ENV}={policy!r}: expected one of {', '.join(WAIT_POLICIES)}")
    return policy


def cpu_session(path: str | os.PathLike, threads: int | None = None):
    """An `onnxruntime.InferenceSession` for the ONNX file at `path` on the CPU, with at most
    `threads` intra-op threads (None: onnxruntime's choice, one per core), its threads waiting
    as `FER_HUB_WAIT_POLICY` says."""
    import onnxruntime as ort

    policy = wait_policy()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if policy == "active" else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
