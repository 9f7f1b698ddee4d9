"""FER-2013 from the Hugging Face Hub (or a local folder laid out like a Hub dataset repo).

`load_dataset(ID_OR_PATH)` is the only way in. Copies of FER-2013 on the Hub disagree on split
names, column names, image encoding and label order, so every split is normalized to
uint8 images (N, 1, 48, 48) and int64 labels indexing `EMOTIONS`. Decoding happens once, with a
progress bar, and is cached on disk keyed by the dataset's fingerprint.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..cache import default_cache_dir
from ..dataset_layout import SPLIT_NAMES, check_dataset_folder, looks_like_a_path
from ..errors import InputError, NotFoundError
from ..labels import EMOTIONS, KAGGLE_ORDER, label_mapping
from ..preprocess import IMAGE_SIZE, to_gray48

__all__ = ["DEFAULT_DATASET", "DEFAULT_REVISION", "FERData", "load_fer2013", "default_cache_dir"]

# The copy of FER-2013 many public projects load, with the official three splits: `train`
# (Training), `publicTest` (PublicTest, our validation) and `privateTest` (PrivateTest, our test);
# columns `image` and `label`, integers 0-6 in the original CSV order (angry, disgust, fear,
# happy, sad, surprise, neutral), which `_decode_labels` maps to EMOTIONS by name. Pinned to a
# commit so a re-upload cannot silently change what a checkpoint was trained on.
DEFAULT_DATASET = "Aaryan333/fer2013_train_publicTest_privateTest"
DEFAULT_REVISION = "da8d1643649c86bfc2cffba5b744b51fdf329212"

_CACHE_VERSION = "fer_hub-decode-v1"  # bump when decoding changes, so old caches are not reused
_USAGE_VALUES = {"training": "train", "publictest": "validation", "privatetest": "test"}
_IMAGE_COLUMNS = ("image", "img", "img_bytes", "pixels")
_LABEL_COLUMNS = ("label", "labels", "emotion")


@dataclass
class FERData:
    """Decoded FER-2013: uint8 images (N, 1, 48, 48) and int64 labels indexing EMOTIONS."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    source: str
    notes: list[str] = field(default_factory=list)  # what was inferred, for the log and card

    def summary(self) -> str:
        test = "none" if self.x_test is None else f"{len(self.x_test):,}"
        return f"{self.source}: train {len(self.x_train):,}, validation {len(self.x_val):,}, test {test}"


def load_fer2013(
    id_or_path: str = DEFAULT_DATASET,
    *,
    cache_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    revision: str | None = None,
    log=print,
) -> FERData:
    """Load, normalize and decode FER-2013 from a Hub dataset id or a local Hub-style folder.

    Validation comes from a validation/val/valid/PublicTest split; failing that, a seeded,
    stratified `val_fraction` of train (announced through `log`). A single split with a
    `Usage` column is split by it, as in the original CSV.
    """
    if revision is None and id_or_path == DEFAULT_DATASET:
        revision = DEFAULT_REVISION
    splits, fingerprint = _load_splits(id_or_path, revision)
    cache_file = Path(cache_dir or default_cache_dir()) / f"{fingerprint}.pt"
    decoded = _read_cache(cache_file)
    if decoded is None:
        decoded, notes = {}, []
        for role, split in splits.items():
            decoded[role] = _decode_split(split, f"{id_or_path} split {split.split_label!r}", notes)
        decoded["notes"] = notes
        _write_cache(cache_file, decoded)
    else:
        log(f"[data] decoded images loaded from cache {cache_file}")
    notes = list(decoded["notes"])
    x_train, y_train = decoded["train"]
    if "validation" in decoded:
        x_val, y_val = decoded["validation"]
    else:
        val_idx = _stratified_holdout(y_train, val_fraction, seed)
        keep = torch.ones(len(y_train), dtype=torch.bool)
        keep[val_idx] = False
        x_val, y_val = x_train[val_idx], y_train[val_idx]
        x_train, y_train = x_train[keep], y_train[keep]
        notes.append(
            f"no validation split found: held out a stratified {val_fraction:.0%} of train "
            f"(seed {seed}, {len(y_val):,} images) for validation"
        )
    x_test, y_test = decoded.get("test", (None, None))
    data = FERData(x_train, y_train, x_val, y_val, x_test, y_test, str(id_or_path), notes)
    for note in notes:
        log(f"[data] {note}")
    return data


# ---------------------------------------------------------------------------------------------
# splits


class _Split:
    """A datasets.Dataset plus the split name it came from (for error messages)."""

    def __init__(self, ds, split_label: str):
        self.ds, self.split_label = ds, split_label


def _load_splits(id_or_path: str, revision: str | None) -> tuple[dict[str, _Split], str]:
    import datasets  # imported here: `fer_hub` inference must not need it

    local = Path(id_or_path).exists()
    if not local and looks_like_a_path(str(id_or_path)):
        raise NotFoundError(f"{id_or_path}: no such folder. {WHERE_FER2013}")
    if local:
        revision = None  # a local folder is what it is; revisions name Hub commits
        check_dataset_folder(Path(id_or_path))
    try:
        dsd = datasets.load_dataset(str(id_or_path), revision=revision)
    except Exception as e:  # datasets raises many types (offline, not found, bad files)
        empty = re.search(r'Instruction "(.+?)" corresponds to no data', str(e))
        if empty:
            raise InputError(f"{id_or_path!r}: split {empty.group(1)!r} is empty") from e
        hint = (
            "Check that its parquet files are whole (data/train-*.parquet, ...)"
            if local  # the example below would send them back to the same folder
            else f"Pass --dataset a Hub dataset id you can reach (online) or a local folder. {WHERE_FER2013}"
        )
        raise InputError(
            f"could not load dataset {id_or_path!r} with datasets.load_dataset: {type(e).__name__}: {e}\n{hint}"
        ) from e
    if not isinstance(dsd, datasets.DatasetDict):
        raise InputError(f"{id_or_path!r}: expected a dataset with splits, got {type(dsd)}")

    by_role: dict[str, _Split] = {}
    ((first_name, first),) = list(dsd.items())[:1]
    usage = next((c for c in first.column_names if c.lower() == "usage"), None)
    if len(dsd) == 1 and usage is not None:  # the original CSV: one table, split by its Usage column
        by_role = _split_by_usage(first, first_name, usage, id_or_path)
    else:
        for name, ds in dsd.items():
            for role, aliases in SPLIT_NAMES.items():
                if name.lower() in aliases and role not in by_role:
                    by_role[role] = _Split(ds, name)
    if "train" not in by_role:
        raise InputError(
            f"{id_or_path!r}: no training split; found splits {list(dsd)}, expected one named "
            f"train/training, or a single split with a Usage column (Training/PublicTest/PrivateTest)"
        )
    for role, split in by_role.items():
        if len(split.ds) == 0:
            raise InputError(f"{id_or_path!r}: split {split.split_label!r} ({role}) is empty")
    fingerprint = hashlib.sha256(
        "|".join(
            [_CACHE_VERSION, str(id_or_path)]
            + [f"{r}={s.split_label}:{s.ds._fingerprint}" for r, s in sorted(by_role.items())]
        ).encode()
    ).hexdigest()[:24]
    return by_role, fingerprint


# Where the data for training, calibration and `export --dataset` comes from, said once.
WHERE_FER2013 = (
    f"FER-2013 is on the Hugging Face Hub as {DEFAULT_DATASET} (the default; it downloads once, "
    "online), or give a local folder laid out like a Hub dataset repo (data/train-*.parquet, ...)"
)


def _split_by_usage(ds, name: str, usage: str, id_or_path: str) -> dict[str, _Split]:
    values = [str(v).strip().lower() for v in ds[usage]]
    unknown = sorted(set(values) - set(_USAGE_VALUES))
    if unknown:
        raise InputError(
            f"{id_or_path!r} split {name!r}: column {usage!r} has values {unknown}; "
            f"expected Training, PublicTest or PrivateTest"
        )
    out = {}
    for value, role in _USAGE_VALUES.items():
        idx = [i for i, v in enumerate(values) if v == value]
        if idx:
            out[role] = _Split(ds.select(idx), f"{name}[{usage}={value}]")
    return out


def _stratified_holdout(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(len(EMOTIONS)):
        idx = (y == c).nonzero().flatten()
        n = round(len(idx) * fraction)
        picked.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(picked).sort().values


# ---------------------------------------------------------------------------------------------
# columns


def _find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _decode_split(split: _Split, where: str, notes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ds = split.ds
    image_col = _find_column(ds.column_names, _IMAGE_COLUMNS)
    label_col = _find_column(ds.column_names, _LABEL_COLUMNS)
    if image_col is None:
        raise InputError(
            f"{where}: no image column; found columns {ds.column_names}, expected one of "
            f"'image'/'img' (Image feature), 'img_bytes' (encoded bytes) or 'pixels' "
            f"(2304 space-separated values)"
        )
    if label_col is None:
        raise InputError(
            f"{where}: no label column; found columns {ds.column_names}, "
            f"expected one of {list(_LABEL_COLUMNS)}"
        )
    y = _decode_labels(ds, label_col, where, notes)
    x = _decode_images(ds, image_col, where)
    return x, y


def _decode_labels(ds, col: str, where: str, notes: list[str]) -> torch.Tensor:
    import datasets

    feature = ds.features[col]
    values = ds[col]
    values = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
    if isinstance(feature, datasets.ClassLabel):
        lut = label_mapping(feature.names, where=f"{where} column {col!r}")
    elif isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        names = sorted({str(v) for v in values})
        mapped = label_mapping(names, where=f"{where} column {col!r}")
        by_name = dict(zip(names, mapped))
        return torch.tensor([by_name[str(v)] for v in values], dtype=torch.int64)
    elif isinstance(feature, datasets.Value) and "int" in feature.dtype:
        lut = [EMOTIONS.index(name) for name in KAGGLE_ORDER]
        note = f"{where}: integer labels without names follow the original CSV order {list(KAGGLE_ORDER)}"
        if note not in notes:
            notes.append(note)
    else:
        raise InputError(
            f"{where}: label column {col!r} has type {feature}; expected a ClassLabel, "
            f"label-name strings, or integers 0-6 in the original CSV order"
        )
    bad = [i for i, v in enumerate(values) if v is None or not 0 <= int(v) < len(lut)]
    if bad:
        raise InputError(
            f"{where}: column {col!r} row {bad[0]} has label {values[bad[0]]!r}; "
            f"expected 0..{len(lut) - 1} ({len(bad)} bad rows in all)"
        )
    return torch.tensor(lut, dtype=torch.int64)[torch.tensor(values, dtype=torch.int64)]


def _decode_images(ds, col: str, where: str) -> torch.Tensor:
    import datasets

    feature = ds.features[col]
    if isinstance(feature, datasets.Image):
        ds = ds.cast_column(col, datasets.Image(decode=False))
        kind = "image"
    elif isinstance(feature, datasets.Value) and feature.dtype in ("binary", "large_binary"):
        kind = "bytes"
    elif isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        kind = "pixels"
    elif isinstance(feature, (datasets.Array2D, datasets.List, datasets.LargeList)):
        kind = "array"
    else:
        raise InputError(
            f"{where}: image column {col!r} has type {feature}; expected an Image feature, "
            f"encoded image bytes, or a string of 2304 space-separated pixel values"
        )
    out = np.empty((len(ds), 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    # Read the raw column once from Arrow: decoding row by row through datasets is far slower.
    values = ds.with_format("arrow")[col].to_pylist()
    # disable=None: a bar on a terminal, nothing in CI logs and redirected output.
    for i, value in enumerate(tqdm(values, desc=f"decoding {where}", unit="img", leave=False, disable=None)):
        try:
            out[i, 0] = _decode_one(value, kind)
        except Exception as e:
            raise InputError(f"{where}: row {i} of column {col!r}: cannot decode image ({e})") from e
    return torch.from_numpy(out)


def _decode_one(value, kind: str) -> np.ndarray:
    if value is None:
        raise ValueError("value is missing")
    if kind == "pixels":
        pixels = np.array(value.split(), dtype=np.float32)
        if pixels.size != IMAGE_SIZE * IMAGE_SIZE:
            raise ValueError(
                f"expected {IMAGE_SIZE * IMAGE_SIZE} space-separated pixel values, found {pixels.size}"
            )
        return pixels.clip(0, 255).astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
    if kind == "array":
        arr = np.asarray(value)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-D pixel array, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = (arr * 255 if arr.max() <= 1 else arr).clip(0, 255).astype(np.uint8)
        return to_gray48(arr)
    if kind == "image":
        data, path = value.get("bytes"), value.get("path")
        src = io.BytesIO(data) if data is not None else path
    else:
        src = io.BytesIO(value)
    try:
        with Image.open(src) as im:
            im.load()
            return to_gray48(im)
    except UnidentifiedImageError as e:
        raise ValueError("not a recognised image format") from e


# ---------------------------------------------------------------------------------------------
# cache


def _read_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # a truncated or stale cache is rebuilt, not fatal
        return None


def _write_cache(path: Path, decoded: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.{time.time_ns()}")
        torch.save(decoded, tmp)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # a read-only cache dir costs a re-decode next time, nothing more
