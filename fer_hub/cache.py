"""Where fer_hub keeps what it can rebuild: decoded datasets and ONNX exports."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """$FER_HUB_CACHE, else $XDG_CACHE_HOME/fer_hub, else ~/.cache/fer_hub."""
    if os.environ.get("FER_HUB_CACHE"):
        return Path(os.environ["FER_HUB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fer_hub"
