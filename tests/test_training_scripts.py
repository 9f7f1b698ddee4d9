"""The resumable training scripts (scripts/*.sh) run for hours unattended: a flag that
train_hub.py would refuse must fail here, in a second, not after the runs before it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fer_hub.training.cli import config_of

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "train_checkpoints.sh",
    "soup_ingredients.sh",
    "recipe_proxies.sh",
    "distill_proxies.sh",
    "seed_ensemble.sh",
]


def commands_of(script: str, tmp_path: Path) -> list[list[str]]:
    """Each command line the script hands to Python, recorded by a stand-in for the interpreter.
    The scripts run from a copy with no runs/ folder, so runs that finished on this machine are
    listed too, as on a fresh clone."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", root / "scripts")
    log = tmp_path / "argv.jsonl"
    stub = tmp_path / "python"
    stub.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    stub.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stub)}
    subprocess.run(
        ["bash", str(root / "scripts" / script), "../shared/fer2013"], env=env, check=True, timeout=60
    )
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def train_hub_commands(script: str, tmp_path: Path) -> list[list[str]]:
    """The arguments of each train_hub.py run the script starts."""
    return [argv[1:] for argv in commands_of(script, tmp_path) if argv[:1] == ["train_hub.py"]]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_training_command_of_a_script_parses(script, tmp_path):
    for argv in train_hub_commands(script, tmp_path):
        cfg = config_of(argv)  # what train_hub.py would refuse exits here
        assert cfg.recipe == "strong" and cfg.dataset == "../shared/fer2013"
        for folder in [cfg.init, *(cfg.teacher or [])]:
            # a folder the script trains earlier, or one that ships
            assert folder is None or folder.startswith(("runs/", "space/checkpoints/")), folder


def test_the_ensemble_script_distils_from_the_shipped_model_and_seeds_it_trains_first(tmp_path):
    configs = [config_of(argv) for argv in train_hub_commands("seed_ensemble.sh", tmp_path)]
    students = [c for c in configs if c.teacher]
    assert students, "a distilled run"
    for student in students:
        before = [c.output for c in configs[: configs.index(student)] if not c.teacher]
        # every teacher ships or is a seed trained earlier in the script (never a student), and
        # each student's seed is its own
        assert set(student.teacher) <= {"space/checkpoints/cnn-model2", *before}
        assert "space/checkpoints/cnn-model2" in student.teacher and len(student.teacher) >= 2
        assert student.seed not in {c.seed for c in configs if c is not student}


def test_the_spread_of_a_recipes_runs_is_their_mean_sd_and_range_by_default_scoring(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_table", ROOT / "scripts" / "results_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    runs = []
    # seed "a" scores with flip TTA by default, seed "b" plain (its calibration chose so); "b" lacks test
    for name, tta, val, test in (("a", True, (0.60, 0.70), (0.61, 0.71)), ("b", False, (0.64, 0.66), None)):
        m = {"calibration": {"tta": tta}, "validation": {"accuracy": val[0], "accuracy_tta": val[1]}}
        if test:
            m["test"] = {"accuracy": test[0], "accuracy_tta": test[1]}
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
        runs.append(str(tmp_path / name))
    table.spread(runs)
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")[1:]
        for line in capsys.readouterr().out.splitlines()
    }
    assert rows[runs[0]][:4] == ["60.00%", "70.00%", "61.00%", "71.00% |"]
    assert rows[runs[1]][1] == "64.00%" and rows[runs[1]][3] == "- |"  # b's default is its plain pass
    assert rows["mean, 2 runs"][:2] == ["62.00%", "67.00%"]
    assert rows["SD (points), 2 runs"][1] == "4.24"  # sample SD of 70 and 64
    assert rows["range (points), 2 runs"][1] == "6.00"
    assert rows["mean, 2 runs"][3] == "71.00% |"  # test: the one run that has it
    assert rows["SD (points), 2 runs"][3] == "- |"
