"""The state of a training run that must survive a crash: one object, saved and restored whole.

After every epoch `train()` writes `TrainState` to `<output>/training_state.pt` atomically (a temp
file, fsync, rename), so Ctrl-C, `kill -9` or the end of a session loses at most the epoch in
progress, and `--resume` continues the run with the weights, optimizer, schedule, weight average,
best epoch, history and every random-number generator exactly as they were. On the CPU, with the
same thread count, a resumed run ends with the same weights as an unbroken one.

The file is scratch space for the run, not part of the model: it is deleted once the model folder
is written, and `push_folder` and the Space bundle leave it out.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..errors import RunError

__all__ = [
    "STATE_FILE",
    "TEMP_PREFIX",
    "TrainState",
    "config_differences",
    "interrupts_deferred",
    "prepare_output",
]

STATE_FILE = "training_state.pt"
TEMP_PREFIX = f".{STATE_FILE}.tmp"  # + pid: a save in progress


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) inside the block takes effect as the block ends, not inside it. A
    KeyboardInterrupt raised inside torch.save leaves its zip writer half-written, and the writer's
    cleanup then raises a RuntimeError that ends the run instead of stopping it gracefully with
    its best epoch. Off the main thread, where no signal handler can be set, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):  # SIG_IGN and SIG_DFL are ints: ignored stays ignored
        previous(signal.SIGINT, None)


def prepare_output(folder: str | Path, state_bytes: int) -> None:
    """Fail before the first epoch, not after it: `folder` must be creatable and writable, with
    room for two state files (the previous one stays until the next is whole). Temp files left by
    an interrupted save are removed first, so they cannot fill the disk a second time."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{TEMP_PREFIX}*"):
            stale.unlink()
        with tempfile.TemporaryFile(dir=folder) as f:
            f.write(b"fer_hub write check")
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise RunError(
            f"--output {folder}: cannot write there ({e.strerror or e}); choose another folder"
        ) from None
    if free < 2 * state_bytes:
        raise RunError(
            f"--output {folder}: {free / 1e6:,.0f} MB free, but the training state needs about "
            f"{2 * state_bytes / 1e6:,.0f} MB (saved after every epoch); free some space or choose "
            f"another folder"
        )


def config_differences(
    saved: dict, now: dict, defaults: dict | None = None, ignore: frozenset[str] = frozenset()
) -> list[str]:
    """'key: saved -> now' for each setting that differs, but those in `ignore` (what a resumed
    run may change: `config.RESUME_MAY_CHANGE`).

    A setting added to the code after the run started is absent from `saved`; it counts as the
    value in `defaults` (the run could not have used anything else), so upgrading fer_hub
    mid-run does not block a resume."""
    defaults = defaults or {}
    keys = sorted((set(saved) | set(now)) - ignore)
    missing = "<absent>"
    diff = []
    for k in keys:
        before, after = saved.get(k, defaults.get(k, missing)), now.get(k, missing)
        if isinstance(before, str) and isinstance(after, list):
            before = [before]  # one teacher, recorded before several were allowed
        if before != after:
            diff.append(f"{k}: {_shown(before)} -> {_shown(after)}")
    return diff


def _shown(value) -> str:
    # None is a flag left to its default ("where it pays" for --bf16 and --compile)
    return "default" if value is None else repr(value)


@dataclass
class TrainState:
    config: dict  # asdict(TrainConfig) of the run that made this state
    epoch: int = 0  # epochs completed
    done: bool = False  # early stopping ended the run before cfg.epochs
    model: dict | None = None  # state dicts, as of the end of `epoch`
    optimizer: dict | None = None
    scheduler: dict | None = None
    ema: dict | None = None
    best_acc: float = -1.0  # validation accuracy of the weights that ship
    best_epoch: int = 0
    best_weights: dict | None = None  # CPU copy of the best epoch's shipped weights
    bad_epochs: int = 0  # epochs since the last new best, for early stopping
    history: list[dict] = field(default_factory=list)
    rng: dict = field(default_factory=dict)  # torch CPU/CUDA generators + the run's own
    seconds: float = 0.0  # wall clock of all epochs so far (training + validation), all sessions
    # What the run read once, at its start: a resume reuses them, so it neither repeats the
    # teachers' passes nor reads folders that may since hold other weights.
    soft: torch.Tensor | None = None  # (N, 7) distillation targets
    sources: dict = field(default_factory=dict)  # loop.folder_record of each teacher and of init

    # -- capture / restore ---------------------------------------------------------------------

    def capture(self, model, optimizer, scheduler, ema, generator: torch.Generator) -> None:
        """Copy everything that shapes the rest of the run into this object."""
        self.model = _cpu(model.state_dict())
        self.optimizer = _cpu(optimizer.state_dict())
        self.scheduler = scheduler.state_dict()
        self.ema = None if ema is None else _cpu(ema.state_dict())
        self.rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
        if torch.cuda.is_available():
            self.rng["cuda"] = torch.cuda.get_rng_state_all()

    def restore(self, model, optimizer, scheduler, ema, generator: torch.Generator) -> None:
        """Put the captured state back into freshly built objects of the same configuration."""
        model.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        scheduler.load_state_dict(self.scheduler)
        if ema is not None:
            ema.load_state_dict(self.ema)
        torch.set_rng_state(self.rng["torch"])
        generator.set_state(self.rng["generator"])
        if "cuda" in self.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.rng["cuda"])

    # -- disk ----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Atomic: a reader (or a crash) sees the previous complete file or this one, never half.
        A save that fails (a full disk) removes its partial file and keeps the previous state; a
        Ctrl-C during the save lets it finish first."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}")
        try:
            with interrupts_deferred(), open(tmp, "wb") as f:
                torch.save(asdict(self), f)
                f.flush()
                os.fsync(f.fileno())
                os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise RunError(
                f"could not save the training state to {path} ({e.strerror or e}); the previous "
                f"epoch's state is kept: free some space, then run the same command with --resume"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> TrainState:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated, or not a state file at all
            raise RunError(
                f"{path} is not a readable training state ({type(e).__name__}: {e}); "
                f"delete it to start the run afresh"
            ) from e
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or "config" not in raw:
            raise RunError(f"{path} is not a fer_hub training state; delete it to start afresh")
        return cls(**{k: v for k, v in raw.items() if k in names})


def _cpu(obj):
    """Deep-copy tensors to the CPU: the live ones keep changing after capture."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj
