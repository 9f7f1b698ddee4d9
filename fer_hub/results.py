"""What an analysis returns, written once: the result's schema (typed), and the flat rows the
command line, the video analysis and the Space write as CSV or JSON.

    {"model": "cnn-model2", "face_found": True,
     "faces": [{"box": [x, y, w, h], "label": "happy", "uncertain": False, "unfamiliar": False,
                "probabilities": {"angry": 0.01, ..., "surprise": 0.02}}]}
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict, get_args, get_origin, get_type_hints

from .labels import EMOTIONS

__all__ = [
    "FaceResult",
    "ImageResult",
    "FACE_FIELDS",
    "PREDICT_COLUMNS",
    "face_row",
    "image_rows",
    "write_rows",
    "parquet_schema",
    "parquet_table",
    "json_schema",
]


class _FaceRequired(TypedDict):
    box: list[int]  # [x, y, w, h] in the image's pixels
    label: str  # the most probable of EMOTIONS
    probabilities: dict[str, float]  # all seven, calibrated, summing to 1
    # top probability below the model's threshold fitted on validation, or unfamiliar
    uncertain: bool
    # the crop is blurrier or noisier than the faces the model was fitted on (its sharpness
    # outside the model's range fitted on validation); uncertain too
    unfamiliar: bool


class FaceResult(_FaceRequired, total=False):
    """One face. With `explain=True` also "saliency" (48x48 Grad-CAM in [0, 1]), "crop_box"
    and "crop_angle"; in a tracked result (video, live) also "track"."""

    saliency: list[list[float]]
    crop_box: list[int]
    crop_angle: float
    track: int


class ImageResult(TypedDict):
    """One image: its faces, largest first."""

    model: str
    face_found: bool
    faces: list[FaceResult]


# What a row says of one face, in every table: its box, label, flags and seven probabilities.
FACE_FIELDS = ["x", "y", "w", "h", "label", "uncertain", "unfamiliar", *EMOTIONS]
# One row per face of `fer-hub predict`.
PREDICT_COLUMNS = ["file", "face", "face_found", *FACE_FIELDS]


def face_row(file: str, index: int, result: ImageResult, face: FaceResult) -> dict:
    """`face` (the `index`-th of `result`, from `file`) as one flat row with PREDICT_COLUMNS."""
    return {
        "file": file,
        "face": index,
        "face_found": result["face_found"],
        **dict(zip("xywh", face["box"])),
        "label": face["label"],
        "uncertain": face["uncertain"],
        "unfamiliar": face["unfamiliar"],
        **{e: round(face["probabilities"][e], 6) for e in EMOTIONS},
    }


def image_rows(file: str, result: ImageResult) -> list[dict]:
    """One row per face of `result`; an image without a face gets one row that says so, with
    no box, label or probabilities (an empty row, not an invented answer)."""
    if not result["faces"]:
        return [{**dict.fromkeys(PREDICT_COLUMNS, ""), "file": file, "face_found": False}]
    return [face_row(file, i, result, face) for i, face in enumerate(result["faces"])]


def write_rows(
    rows: Iterable[dict],
    columns: list[str],
    csv_path: str | Path | None = None,
    json_path: str | Path | None = None,
) -> None:
    """Rows as a CSV with `columns` (to stdout when neither path is given) and/or a JSON list."""
    rows = list(rows)
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=1))
    if csv_path or not json_path:
        out = open(csv_path, "w", newline="") if csv_path else sys.stdout  # noqa: SIM115
        try:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        finally:
            if csv_path:
                out.close()


# PREDICT_COLUMNS typed for Parquet (the CSV's empty cells are nulls there), plus "error": why
# an image was skipped, null for the rows of a readable one.
_INT = ("face", "x", "y", "w", "h")
_BOOL = ("face_found", "uncertain", "unfamiliar")


def parquet_schema():
    """The Arrow schema of `fer-hub predict --parquet`'s rows, whichever engine wrote them."""
    import pyarrow as pa

    kinds = (
        {c: pa.int64() for c in _INT} | {c: pa.bool_() for c in _BOOL} | {e: pa.float64() for e in EMOTIONS}
    )
    return pa.schema([(c, kinds.get(c, pa.string())) for c in PREDICT_COLUMNS] + [("error", pa.string())])


def parquet_table(rows: Iterable[dict], problems: Iterable[tuple[str, str]] = ()):
    """Rows (PREDICT_COLUMNS, "" for empty) and (file, reason) for skipped images, as one table."""
    import pyarrow as pa

    typed = [{k: (None if v == "" else v) for k, v in r.items()} for r in rows]
    typed += [{"file": file, "face_found": False, "error": reason} for file, reason in problems]
    return pa.Table.from_pylist(typed, schema=parquet_schema())


def json_schema(kind: type = ImageResult, required_only: bool = True) -> dict:
    """JSON Schema of a result TypedDict (for API docs and tool descriptions), written from
    the TypedDicts above so the schema is never a second copy."""
    simple = {
        str: {"type": "string"},
        bool: {"type": "boolean"},
        int: {"type": "integer"},
        float: {"type": "number"},
    }
    if kind in simple:
        return simple[kind]
    origin, args = get_origin(kind), get_args(kind)
    if origin is list:
        return {"type": "array", "items": json_schema(args[0], required_only)}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(args[1], required_only)}
    hints = get_type_hints(kind)
    names = sorted(kind.__required_keys__) if required_only else list(hints)
    names = [n for n in hints if n in names]  # in declaration order
    return {
        "type": "object",
        "properties": {n: json_schema(hints[n], required_only) for n in names},
        "required": names,
    }
