"""The package's shape: no import circle, inference apart from the training wing, short functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fer_hub"
# Entry points and aliases that reach both wings on purpose: the command line (`fer-hub train`,
# `calibrate`, `export --dataset`), the lazy `fer_hub.load_fer2013`, and the old module names.
BOTH_WINGS = {"fer_hub", "fer_hub.cli", "fer_hub.train"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """fer_hub modules `path` imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fer_hub")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("fer_hub"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}  # `from . import x` names a module
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_the_package_has_no_import_circle():
    edges = graph()
    done, on_path = set(), []

    def visit(node):
        if node in on_path:
            raise AssertionError("import circle: " + " -> ".join(on_path[on_path.index(node) :] + [node]))
        if node in done:
            return
        on_path.append(node)
        for nxt in sorted(edges.get(node, ())):
            visit(nxt)
        on_path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)


def test_no_inference_module_imports_the_training_wing():
    offenders = {
        module: sorted(m for m in targets if m.startswith("fer_hub.training"))
        for module, targets in graph().items()
        if not module.startswith("fer_hub.training") and module not in BOTH_WINGS
    }
    assert not {m: t for m, t in offenders.items() if t}
    # the Space reaches training only to deploy, never to serve
    for name in ("app.py", "views.py", "components.py"):
        assert "fer_hub.training" not in (ROOT / "space" / name).read_text(), name


def test_using_a_predictor_loads_neither_datasets_nor_the_training_wing():
    code = (
        "import sys, fer_hub; fer_hub.Predictor; "
        "assert 'datasets' not in sys.modules; "
        "assert not [m for m in sys.modules if m.startswith('fer_hub.training')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_function_is_longer_than_100_lines():
    long = []
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "space").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 100:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long


def test_the_training_loop_reads_in_one_screen():
    tree = ast.parse((PACKAGE / "training" / "loop.py").read_text())
    (train,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train"]
    assert train.end_lineno - train.lineno + 1 <= 90


def test_the_old_module_names_of_the_training_wing_still_import():
    import fer_hub.calibration
    import fer_hub.train_state
    from fer_hub.data import load_fer2013

    import fer_hub.train
    from fer_hub.training import calibration, data, state

    assert fer_hub.calibration is calibration and fer_hub.train_state is state
    assert load_fer2013 is data.load_fer2013 and fer_hub.train.TrainConfig is fer_hub.training.TrainConfig
