"""What `fer-hub predict` reads: image files, folders and globs of them, the rows of Parquet
files with an image column, and a split of a dataset (a Hub id or a local folder laid out like
one) found through `datasets`.

Every image gets a name, the "file" of its rows: a file's path, or PARQUET#ROW for a row of a
Parquet file. A million rows are then listed, sorted, skipped on restart and reported exactly as
a million files are; only `ImageReader` knows how to fetch the bytes behind a name, the same way
in this process and in a Ray worker.

    names, problems = image_names(["photos/", "faces.parquet"])
    names, problems = image_names([], dataset="../shared/fer2013", split="test")
    image = ImageReader().load(names[0])  # a PIL RGB image, or ImageError saying why not
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from .dataset_layout import check_dataset_folder, looks_like_a_path
from .errors import InputError, NotFoundError
from .images import IMAGE_SUFFIXES, ImageError, image_files, load_image

__all__ = ["ROW_MARK", "image_names", "dataset_files", "image_column", "cell_bytes", "ImageReader"]

# Between a Parquet file and a row number in an image's name: "faces.parquet#17".
ROW_MARK = "#"

PARQUET = ".parquet"
_GLOB = set("*?[")
# Names an image column goes by when the file's schema does not say (as in training/data.py).
_IMAGE_NAMES = ("image", "img", "img_bytes", "photo", "picture")


def image_names(
    paths: list[str],
    *,
    dataset: str | None = None,
    split: str | None = None,
    column: str | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The images to analyse, by name, in order (folders searched recursively, globs expanded,
    Parquet files row by row, then the dataset split's files) and (input, reason) for each
    input that cannot be used. `column` names the image column of Parquet files (default:
    the one their schema marks as an image, else one named image/img/...). A name this
    returned stands for itself, so a list of names can be given again."""
    args = list(paths) + (dataset_files(dataset, split) if dataset else [])
    names: list[str] = []
    problems: list[tuple[str, str]] = []
    for arg in args:
        for path in _expand(arg, problems):
            if _is_parquet(path):
                try:
                    names += _parquet_rows(path, column)
                except InputError as e:
                    problems.append((path, e.reason))
            else:
                names.append(path)
    return names, problems


def _expand(arg: str, problems: list) -> list[str]:
    """One argument as the paths it stands for: a folder's images, a glob's matches, itself."""
    if (
        "://" in arg or _split_name(arg)[1] is not None
    ):  # a URL, or one row's name, listed before  # a URL (hf://, s3://, ...): fsspec reads it when it is needed
        return [arg]
    if not os.path.exists(arg) and _GLOB & set(arg):
        matches = sorted(glob.glob(arg, recursive=True))
        found = [
            m
            for m in matches
            if os.path.isfile(m) and (Path(m).suffix.lower() in IMAGE_SUFFIXES or _is_parquet(m))
        ]
        if not found:
            problems.append((arg, "no image or Parquet files match this pattern"))
        return found
    files, missing = image_files([arg])
    problems += missing
    return [str(f) for f in files]


def _is_parquet(path: str) -> bool:
    return path.lower().endswith(PARQUET)


def dataset_files(dataset: str, split: str | None) -> list[str]:
    """The data files of one split of `dataset` (a Hub id ORG/NAME or a local folder laid out
    like a Hub dataset repo), as `datasets` resolves them, without downloading them."""
    import datasets

    if os.path.isfile(dataset):
        raise InputError(
            "a file: --dataset takes a dataset folder or a Hub id (give Parquet files as paths)", dataset
        )
    if os.path.isdir(dataset):
        check_dataset_folder(Path(dataset))
    elif looks_like_a_path(dataset):
        raise NotFoundError("no such folder", dataset)
    try:
        builder = datasets.load_dataset_builder(dataset)
    except FileNotFoundError as e:
        raise NotFoundError("no such dataset folder or Hub dataset", dataset) from e
    except Exception as e:  # offline, private, a layout datasets does not know: its words say which
        raise InputError(f"cannot open it with datasets ({type(e).__name__}: {e})", dataset) from e
    splits = {str(k): v for k, v in (builder.config.data_files or {}).items()}
    if not splits:
        raise InputError("datasets finds no data files in it", dataset)
    if split is None:
        if len(splits) > 1:
            raise InputError(f"it has the splits {', '.join(splits)}: choose one with --split", dataset)
        split = next(iter(splits))
    if split not in splits:
        raise InputError(f"no split {split!r}; it has {', '.join(splits)}", dataset)
    files = [str(f) if "://" in str(f) else os.path.normpath(str(f)) for f in splits[split]]
    readable = [f for f in files if _is_parquet(f) or Path(f).suffix.lower() in IMAGE_SUFFIXES]
    if not readable:
        kinds = sorted({Path(f).suffix or "?" for f in files})
        raise InputError(
            f"split {split!r} is stored as {', '.join(kinds)} files; fer-hub reads Parquet and image files",
            dataset,
        )
    return readable


# ---------------------------------------------------------------------------------------------
# Parquet


def _open_parquet(path: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if "://" in path:
            import fsspec

            return pq.ParquetFile(fsspec.open(path, "rb").open())
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError("no such file") from None
    except (OSError, pa.ArrowException, ValueError) as e:
        raise InputError("not a readable Parquet file") from e


def image_column(schema, column: str | None = None) -> str:
    """The column of a Parquet file's Arrow `schema` that holds images: `column` if given, else
    the one its Hugging Face metadata marks as an Image, else one of the usual names. An image
    column holds encoded bytes, or {bytes, path} structs as `datasets` writes them."""
    import pyarrow as pa

    def holds_bytes(name: str) -> bool:
        kind = schema.field(name).type
        if pa.types.is_struct(kind):
            return kind.get_field_index("bytes") >= 0
        return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)

    names = list(schema.names)
    if column is not None:
        if column not in names:
            raise InputError(f"no column {column!r}; it has {', '.join(names)}")
        if not holds_bytes(column):
            raise InputError(f"column {column!r} holds {schema.field(column).type}, not encoded images")
        return column
    meta = (schema.metadata or {}).get(b"huggingface")
    if meta:
        try:
            features = json.loads(meta).get("info", {}).get("features", {})
        except ValueError:
            features = {}
        marked = [n for n, f in features.items() if isinstance(f, dict) and f.get("_type") == "Image"]
        if marked and marked[0] in names:
            return marked[0]
    lower = {n.lower(): n for n in names if holds_bytes(n)}
    for candidate in _IMAGE_NAMES:
        if candidate in lower:
            return lower[candidate]
    if len(lower) == 1:
        return next(iter(lower.values()))
    raise InputError(
        f"no image column found among {', '.join(names)}: name it with --image-column"
        if not lower
        else f"several columns hold bytes ({', '.join(lower.values())}): choose one with --image-column"
    )


def _parquet_rows(path: str, column: str | None) -> list[str]:
    pf = _open_parquet(path)
    image_column(pf.schema_arrow, column)  # refused here, once, rather than row by row later
    return [f"{path}{ROW_MARK}{i}" for i in range(pf.metadata.num_rows)]


class ImageReader:
    """Loads images by name. Rows of a Parquet file are read a row group at a time, and the
    last group is kept: names arrive in order, so a batch costs one read, not one per row."""

    def __init__(self, column: str | None = None) -> None:
        self.column = column
        self._files: dict[str, tuple] = {}  # path -> (ParquetFile, its image column, row group starts)
        self._group: tuple[str, int, list] | None = None  # (path, group, its images)

    def load(self, name: str, cell=None):
        """The image `name` stands for (or in `cell`, an image column's value, when the rows
        came with their images), as an 8-bit RGB PIL image; ImageError if it cannot be had."""
        path, row = _split_name(name)
        if cell is None and row is None:  # a file
            return load_image(_fetch(path) if "://" in path else path, mode="RGB", name=name)
        try:
            data = cell_bytes(cell) if cell is not None else self._row(path, row)
        except InputError as e:
            raise ImageError(e.reason, name) from None
        return load_image(data, mode="RGB", name=name)

    def _row(self, path: str, row: int) -> bytes:
        import bisect

        if path not in self._files:
            pf = _open_parquet(path)
            md = pf.metadata
            starts = [0]
            for g in range(md.num_row_groups):
                starts.append(starts[-1] + md.row_group(g).num_rows)
            self._files = {path: (pf, image_column(pf.schema_arrow, self.column), starts)}  # one file open
        pf, column, starts = self._files[path]
        if not 0 <= row < starts[-1]:
            raise InputError(f"no row {row}: the file has {starts[-1]}")
        group = bisect.bisect_right(starts, row) - 1
        if self._group is None or self._group[:2] != (path, group):
            try:
                values = pf.read_row_group(group, columns=[column]).column(0).to_pylist()
            except Exception as e:  # a file cut short or corrupt past its footer
                raise InputError("its Parquet file could not be read") from e
            self._group = (path, group, values)
        return cell_bytes(self._group[2][row - starts[group]])


def cell_bytes(value) -> bytes:
    """The encoded image in one cell of an image column: bytes, or a {bytes, path} struct."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if not data:
        raise InputError("no image bytes in this row")
    return bytes(data)


def _split_name(name: str) -> tuple[str, int | None]:
    path, mark, row = name.rpartition(ROW_MARK)
    if mark and _is_parquet(path) and row.isdigit():
        return path, int(row)
    return name, None


def _fetch(url: str) -> bytes:
    import fsspec

    try:
        with fsspec.open(url, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageError("no such file", url) from None
    except Exception as e:  # network and credentials, in the remote store's words
        raise ImageError(f"could not be fetched ({type(e).__name__})", url) from e
