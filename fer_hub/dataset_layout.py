"""What a local folder laid out like a Hugging Face Hub dataset repo looks like, so that a
folder of something else is refused before `datasets` searches every subfolder of it for data
files and loads whatever it finds. Training and `fer-hub predict --dataset` both check with it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

__all__ = ["SPLIT_NAMES", "looks_like_a_path", "check_dataset_folder"]

# The names FER-2013's copies give their splits, by the role each plays here.
SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "val", "valid", "publictest"),
    "test": ("test", "privatetest"),
}

_DATA_SUFFIXES = (".parquet", ".arrow", ".csv", ".json", ".jsonl")
_SPLIT_DIRS = {alias for aliases in SPLIT_NAMES.values() for alias in aliases}


def looks_like_a_path(text: str) -> bool:
    """A local path, not a Hub id ORG/NAME: starts with . / ~, or has more than one slash."""
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _looks_like_dataset_repo(folder: Path) -> bool:
    """A Hub dataset repo keeps its data at its top: a data/ folder, split-named data files or
    split folders (imagefolder), or a README.md whose YAML lists `configs:`."""
    if (folder / "data").is_dir():
        return True
    readme = folder / "README.md"
    if readme.is_file() and "configs:" in readme.read_text(errors="replace").split("\n---", 1)[0]:
        return True
    for child in folder.iterdir():
        stem = child.name.lower().split("-")[0].split(".")[0]
        if child.is_file() and child.suffix.lower() in _DATA_SUFFIXES:
            return True
        if child.is_dir() and stem in _SPLIT_DIRS:
            return True
    return False


def check_dataset_folder(folder: Path) -> None:
    """Refuse a local folder that is not laid out like a dataset repo (datasets would otherwise
    search every subfolder for data files and load whatever it finds)."""
    if folder.is_file():
        if folder.suffix.lower() in _DATA_SUFFIXES:
            return
        raise InputError(f"{folder}: a file, but not a data file ({', '.join(_DATA_SUFFIXES)})")
    if _looks_like_dataset_repo(folder):
        return
    inside = sorted(c for c in folder.iterdir() if c.is_dir() and _looks_like_dataset_repo(c))
    hint = (
        f"; did you mean {', '.join(str(c) for c in inside)}?"
        if inside
        else "; expected data/train-*.parquet (and validation/test), split folders, or a README.md with configs"
    )
    raise InputError(f"{folder} is not laid out like a dataset repo{hint}")
