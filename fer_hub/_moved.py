"""Old module names of the training wing, kept importable: `import fer_hub.calibration` and
`from fer_hub.data import load_fer2013` still work, and give the module in `fer_hub.training`.

An import hook, not a file per old name: the flat folder holds inference only. `fer_hub.train`
stays a file because its names now come from several modules.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old name under fer_hub -> its module under fer_hub.training
MOVED = {
    "augment": "augment",
    "calibration": "calibration",
    "card": "card",
    "data": "data",
    "ema": "ema",
    "evaluate": "evaluate",
    "hub": "hub",
    "train_state": "state",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        package, _, short = name.rpartition(".")
        if package == "fer_hub" and short in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(f"fer_hub.training.{MOVED[spec.name.rpartition('.')[2]]}")

    def exec_module(self, module) -> None:
        pass  # the real module ran when it was imported under its own name


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
