"""Resumable training: kill -9 mid-run, --resume, and the same weights as an unbroken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fer_hub import load_model
from fer_hub.training.cli import main
from fer_hub.training.state import STATE_FILE, TEMP_PREFIX, TrainState, config_differences

ROOT = Path(__file__).resolve().parents[1]


def cli(tiny_fer: Path, out: Path, *extra: str) -> list[str]:
    # The strong recipe exercises everything a resume must restore: EMA, one-cycle, erasing,
    # zoom; mixup and the degradations draw from the run's generator too.
    return [
        "--dataset", str(tiny_fer), "--recipe", "strong", "--epochs", "3", "--batch-size", "32",
        "--mixup", "0.2", "--degrade", "0.5", "--threads", "1", "--output", str(out), *extra,
    ]  # fmt: skip


def run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train_hub.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kw,
    )


def logits(folder: Path) -> torch.Tensor:
    x = torch.randn(16, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return load_model(folder)(x)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_run_killed_after_an_epoch_and_resumed_ends_with_the_unbroken_runs_weights(tiny_fer, tmp_path):
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    p = run_cli(cli(tiny_fer, unbroken))
    out, _ = p.communicate(timeout=200)
    assert p.returncode == 0, out

    p = run_cli(cli(tiny_fer, broken))
    lines = []
    for line in p.stdout:  # kill -9 right after the first epoch line: no chance to clean up
        lines.append(line)
        if line.startswith("epoch   1 |"):
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, "".join(lines)
    assert (broken / STATE_FILE).is_file() and not (broken / "model.safetensors").exists()

    p = run_cli(cli(tiny_fer, broken, "--resume"))
    out, _ = p.communicate(timeout=200)
    assert p.returncode == 0, out
    assert "resuming after epoch 1/3" in out and "epoch   1 |" not in out
    assert (logits(broken) - logits(unbroken)).abs().max() < 1e-3
    assert not (broken / STATE_FILE).exists()  # the run is over: its scratch state is gone
    history = json.loads((broken / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    learned = ("train_loss", "train_acc", "val_acc", "lr")  # everything but the timings
    reference = json.loads((unbroken / "history.json").read_text())
    assert [[h[k] for k in learned] for h in history] == [[h[k] for k in learned] for h in reference]


def write_state(out: Path, **config) -> None:
    TrainState(config=config, epoch=2).save(out / STATE_FILE)


def test_resuming_with_other_settings_is_refused_naming_each_difference(tiny_fer, tmp_path, capsys):
    from dataclasses import asdict

    from fer_hub.training.config import build_parser, config_from_args

    out = tmp_path / "out"
    saved = asdict(config_from_args(build_parser().parse_args(cli(tiny_fer, out))))
    write_state(out, **saved)
    assert main(cli(tiny_fer, out, "--resume", "--lr", "0.01", "--epochs", "5")) == 2
    err = capsys.readouterr().err
    assert "epochs: 3 -> 5" in err and "lr: 0.001 -> 0.01" in err and "batch_size" not in err


def test_a_new_run_will_not_overwrite_an_unfinished_one(tiny_fer, tmp_path, capsys):
    out = tmp_path / "out"
    write_state(out, model="custom-cnn", epochs=40)
    assert main(cli(tiny_fer, out)) == 2
    err = capsys.readouterr().err
    assert "unfinished run (2/40 epochs of custom-cnn)" in err and "--resume" in err


def test_resume_without_a_saved_state_says_so(tiny_fer, tmp_path, capsys):
    assert main(cli(tiny_fer, tmp_path / "nothing", "--resume")) == 2
    assert "no training state in" in capsys.readouterr().err


def test_a_truncated_state_file_is_a_clear_error(tiny_fer, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / STATE_FILE).write_bytes(b"PK\x03\x04 truncated")
    assert main(cli(tiny_fer, out, "--resume")) == 2
    assert "is not a readable training state" in capsys.readouterr().err


def test_state_is_written_atomically_and_round_trips(tmp_path):
    state = TrainState(config={"lr": 1e-3}, epoch=4, best_acc=0.5, history=[{"epoch": 1}])
    state.rng = {"torch": torch.get_rng_state()}
    state.save(tmp_path / STATE_FILE)
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temp file left behind
    back = TrainState.load(tmp_path / STATE_FILE)
    assert (back.epoch, back.best_acc, back.history) == (4, 0.5, [{"epoch": 1}])
    assert torch.equal(back.rng["torch"], state.rng["torch"])


def interrupt_inside_torch_save(monkeypatch, calls: int = 1) -> None:
    """The first `calls` saves of a training state receive a Ctrl-C (SIGINT) while they write."""
    real, n = torch.save, {"left": calls}

    def save(obj, f, *a, **k):
        if n["left"] and TEMP_PREFIX in str(getattr(f, "name", f)):
            n["left"] -= 1
            os.kill(os.getpid(), signal.SIGINT)  # its handler runs at the next bytecode: here
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)


def test_ctrl_c_during_a_state_save_lets_the_save_finish_then_interrupts(tmp_path, monkeypatch):
    state = TrainState(config={"lr": 1e-3}, epoch=2, best_acc=0.5, history=[{"epoch": 1}, {"epoch": 2}])
    state.rng = {"torch": torch.get_rng_state()}
    interrupt_inside_torch_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        state.save(tmp_path / STATE_FILE)
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]
    assert TrainState.load(tmp_path / STATE_FILE).history == [{"epoch": 1}, {"epoch": 2}]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works as before


def test_ctrl_c_while_an_epoch_is_saved_stops_the_run_with_that_epoch(tiny_fer, tmp_path, monkeypatch):
    interrupt_inside_torch_save(monkeypatch)
    out = tmp_path / "out"
    args = ["--dataset", str(tiny_fer), "--epochs", "3", "--batch-size", "32", "--limit", "64"]
    assert main([*args, "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs_run"] == 1 and metrics["best_epoch"] == 1
    assert TrainState.load(out / STATE_FILE).epoch == 1  # whole, so --resume carries on from it
    assert not list(out.glob(".*tmp*"))


def test_a_ctrl_c_ignored_before_a_save_stays_ignored(tmp_path, monkeypatch):
    interrupt_inside_torch_save(monkeypatch)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a shell's background job
    try:
        TrainState(config={}, epoch=1).save(tmp_path / STATE_FILE)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert TrainState.load(tmp_path / STATE_FILE).epoch == 1


def test_where_to_push_may_change_between_start_and_resume():
    from fer_hub.training.config import RESUME_MAY_CHANGE

    assert RESUME_MAY_CHANGE == {"resume", "push", "repo_id", "private", "output"}
    saved, now = {"lr": 1, "push": False, "output": "a"}, {"lr": 1, "push": True, "output": "b"}
    assert config_differences(saved, now, ignore=RESUME_MAY_CHANGE) == []
    assert config_differences({"lr": 1}, {"lr": 2, "seed": 0}) == ["lr: 1 -> 2", "seed: '<absent>' -> 0"]


def test_a_refused_resume_names_a_flag_left_to_its_default_as_default_not_none():
    # no flag accepts "None": a run saved with --no-bf16, resumed without it, must say what changed
    assert config_differences({"bf16": False}, {"bf16": None}) == ["bf16: False -> default"]


def test_a_setting_added_after_the_run_started_counts_as_its_default():
    # A run started before fer_hub grew a `threads` setting resumes when `threads` is the default.
    assert config_differences({"lr": 1}, {"lr": 1, "threads": 0}, defaults={"threads": 0}) == []
    assert config_differences({"lr": 1}, {"lr": 1, "threads": 4}, defaults={"threads": 0}) == [
        "threads: 0 -> 4"
    ]


def stop_after_the_first_epoch(line) -> None:
    if str(line).startswith("epoch   1 |"):
        raise KeyboardInterrupt  # as Ctrl-C there would: the run stops and keeps its state


@pytest.mark.slow
@pytest.mark.parametrize("source", ["teacher", "init"])
def test_a_resumed_run_reads_no_teacher_or_init_folder_again(source, tiny_fer, tmp_path):
    """The teachers' passes cost minutes on the full split, and a teacher's or init's folder may
    hold other weights, or be gone, by the time a run resumes: the state keeps the distillation
    targets and the folders' records, and the saved weights replace init's."""
    import hashlib

    from fer_hub.models import CustomCNN
    from fer_hub.training.config import TrainConfig
    from fer_hub.training.loop import train

    folder = tmp_path / source
    torch.manual_seed(0)
    CustomCNN().eval().save_pretrained(folder)
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    flag = {"teacher": [str(folder)]} if source == "teacher" else {"init": str(folder)}

    def config(out: str, **kw) -> TrainConfig:
        return TrainConfig(dataset=str(tiny_fer), model="custom-cnn", epochs=2, batch_size=32,
                           output=str(tmp_path / out), **flag, **kw)  # fmt: skip

    unbroken = train(config("unbroken"), log=lambda *_: None)
    train(config("broken"), log=stop_after_the_first_epoch)
    assert (tmp_path / "broken" / STATE_FILE).is_file()
    torch.manual_seed(1)
    CustomCNN().eval().save_pretrained(folder)  # the folder now holds another model
    (folder / "config.json").unlink()  # and no longer loads at all
    logs: list[str] = []
    resumed = train(config("broken", resume=True), log=lambda line: logs.append(str(line)))
    if source == "teacher":
        assert any("as the run saved them at its start" in line for line in logs)
    x = torch.randn(8, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(resumed.model.eval()(x), unbroken.model.eval()(x), atol=1e-4)
    record = resumed.metrics[source]
    assert (record[0] if source == "teacher" else record)["sha256"] == digest  # what it learned from
