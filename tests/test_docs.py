"""README.md and MODEL_CARD.md promise what the repository does."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|python)\n(.*?)```", text, flags=re.S)


def test_readme_first_command_starts_the_space_and_trains_nothing():
    first = code_blocks((ROOT / "README.md").read_text())[0]
    assert "python space/app.py" in first and "train" not in first


def test_ci_runs_exactly_the_readme_test_commands():
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in code_blocks(readme) if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    for line in block.strip().splitlines():
        assert line in ci


def test_no_unfilled_placeholders_in_the_docs():
    for name in ("README.md", "MODEL_CARD.md"):
        assert "@@" not in (ROOT / name).read_text(), f"{name} has an unfilled @@placeholder@@"
