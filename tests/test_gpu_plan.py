"""scripts/gpu_plan.py: the data packed for the device comes back identical, and a plan's runs
start together (a run that learns from another once that one is done), the deadline stops a run
that is still training (which keeps and reports its best epoch), and the bundle holds the summary
and the best model folders, never a test figure."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gpu_plan():
    spec = importlib.util.spec_from_file_location("gpu_plan", ROOT / "scripts" / "gpu_plan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packed_parts_unpack_to_the_same_train_and_validation_without_test(gpu_plan, tiny_fer, tmp_path):
    from fer_hub.training.data import load_fer2013

    out = tmp_path / "gpudata"
    gpu_plan.pack(str(tiny_fer), out, part_mb=0.001)  # tiny parts: one chunk each
    parts = sorted(p.name for p in out.iterdir())
    assert len(parts) >= 2, parts
    data, packed = load_fer2013(str(tiny_fer)), gpu_plan.unpack(out)
    assert torch.equal(packed.x_train, data.x_train) and torch.equal(packed.y_train, data.y_train)
    assert torch.equal(packed.x_val, data.x_val) and torch.equal(packed.y_val, data.y_val)
    assert packed.x_test is None  # test stays at home
    for f in (out / parts[-1]).iterdir():  # a part left behind is named, not trained on
        f.unlink()
    with pytest.raises(SystemExit, match="carry every part"):
        gpu_plan.unpack(out)


@pytest.mark.slow
def test_a_plan_runs_together_stops_at_the_deadline_and_bundles_the_best(
    gpu_plan, tiny_fer, tmp_path, monkeypatch
):
    gpu_plan.pack(str(tiny_fer), tmp_path / "gpudata", part_mb=36)
    cpu = [
        "--recipe",
        "strong",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-compile",
        "--save-dtype",
        "float16",
    ]
    monkeypatch.setitem(
        gpu_plan.PLANS,
        "test",
        [
            ("quick", ["--model", "custom-cnn", *cpu, "--epochs", "2"]),
            ("long", ["--model", "custom-cnn", *cpu, "--epochs", "5000"]),  # only the deadline ends it
            ("student", ["--model", "custom-cnn", *cpu, "--epochs", "1", "--teacher", "@quick"]),
            ("broken", ["--model", "no-such-model", *cpu]),
            ("orphan", ["--model", "custom-cnn", *cpu, "--epochs", "1", "--teacher", "@broken"]),
        ],
    )
    out = tmp_path / "out"
    gpu_plan.run_plan(
        "test", tmp_path / "gpudata", out, budget_s=60, grace_s=120
    )  # quick, then student, end well before it
    summary = json.loads((out / "summary.json").read_text())
    runs = {r["name"]: r for r in summary["runs"]}
    plan_log = (out / "plan.log").read_text()
    assert runs["quick"]["finished"] and not runs["quick"]["stopped_at_deadline"], plan_log
    assert runs["long"]["finished"] and runs["long"]["stopped_at_deadline"], plan_log
    assert 1 <= runs["long"]["epochs_run"] < 5000
    assert len(runs["quick"]["history"]) == 2
    # a run that learns from another run of the plan starts once that one is done, on its folder
    assert runs["student"]["finished"] and not runs["student"]["not_started"], plan_log
    student_start = plan_log.index("[plan] student at")
    assert "===== quick" in plan_log and "/quick" in plan_log[student_start:].splitlines()[0]
    assert not runs["broken"]["finished"]
    assert runs["orphan"]["not_started"] == "a teacher did not finish", plan_log
    assert sorted(f.name for f in out.iterdir()) == [
        "long.tar.gz",
        "plan.log",
        "quick.tar.gz",
        "student.tar.gz",
        "summary.json",
    ]
    with tarfile.open(out / "quick.tar.gz") as tar:
        names = tar.getnames()
        metrics = json.load(tar.extractfile("quick/metrics.json"))
    assert "quick/model.safetensors" in names and "quick/training_state.pt" not in names
    assert "test" not in metrics and metrics["n_test"] is None


def test_a_plan_naming_a_teacher_run_it_does_not_have_is_refused_before_anything_starts(
    gpu_plan, tmp_path, monkeypatch
):
    monkeypatch.setitem(gpu_plan.PLANS, "test", [("student", ["--teacher", "@nobody"])])
    with pytest.raises(SystemExit, match="no run named nobody"):
        gpu_plan.run_plan("test", tmp_path / "no-data", tmp_path / "out", budget_s=1, grace_s=1)
    assert not (tmp_path / "out").exists()


def test_a_default_part_fits_one_device_call_beside_the_work_tree(gpu_plan):
    """A device call carries the tracked files and one packed part, 64 MiB in all: a checkpoint or
    a fixture added to the repository must not leave the default part without room."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [ROOT / f.decode() for f in listed.stdout.split(b"\0") if f]
    tree = sum(p.stat().st_size for p in paths if p.is_file())
    assert tree + gpu_plan.PART_MB * 1e6 <= gpu_plan.DEVICE_CALL_BYTES, (tree, gpu_plan.PART_MB)
