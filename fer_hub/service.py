"""What the Space serves, without any UI: loading its predictors and shaping results for display.

Kept out of `space/app.py` so the app stays a thin gradio layout and everything here is tested
without starting a server.
"""

from __future__ import annotations

import os
from pathlib import Path

from .labels import EMOTIONS
from .predict import Predictor

__all__ = ["MODEL_NAMES", "FACE_COLUMNS", "load_predictors", "chart_data", "face_rows", "summary"]

MODEL_NAMES = ("custom-cnn", "cnn-model2")


def load_predictors(checkpoints_dir: str | os.PathLike, repo_ids: str | None = None) -> dict[str, Predictor]:
    """One Predictor per model, keyed by architecture name.

    `repo_ids` (default: $FER_MODEL_REPO) is a comma-separated list of Hub repo ids or folders;
    each is registered under the architecture its config.json names. Otherwise both models load
    from `checkpoints_dir/<name>` (the Space's checkpoints/ folder), and a missing one is an error
    that names the path and the command that creates it.
    """
    repo_ids = repo_ids if repo_ids is not None else os.environ.get("FER_MODEL_REPO", "")
    sources = [s.strip() for s in repo_ids.split(",") if s.strip()]
    predictors: dict[str, Predictor] = {}
    if sources:
        for source in sources:
            predictor = Predictor.from_pretrained(source)
            predictors[predictor.name] = predictor
        return predictors
    root = Path(checkpoints_dir)
    missing = [name for name in MODEL_NAMES if not (root / name / "model.safetensors").is_file()]
    if missing:
        commands = "\n".join(
            f"  python train_hub.py --model {name} --output {root / name}" for name in missing
        )
        raise FileNotFoundError(
            f"missing model checkpoint(s): {', '.join(str(root / n) for n in missing)}\n"
            f"Create them with:\n{commands}\n"
            f"or set FER_MODEL_REPO to Hub repo ids (comma-separated)."
        )
    detector = None
    for name in MODEL_NAMES:
        predictor = Predictor.from_pretrained(root / name, detector=detector)
        detector = predictor.detector  # one detector serves both models
        if predictor.name != name:
            raise ValueError(f"{root / name} holds a {predictor.name!r} model, expected {name!r}")
        predictors[name] = predictor
    return predictors


def chart_data(result: dict) -> dict[str, float]:
    """All seven probabilities of the largest face, in EMOTIONS order (for a bar chart)."""
    if not result["faces"]:
        return {}
    probs = result["faces"][0]["probabilities"]
    return {e: float(probs[e]) for e in EMOTIONS}


def face_rows(result: dict) -> list[list]:
    """One table row per face: index, box, label, its probability, and all seven in order."""
    return [
        [
            i + 1,
            *f["box"],
            f["label"],
            round(f["probabilities"][f["label"]], 3),
            *(round(f["probabilities"][e], 3) for e in EMOTIONS),
        ]
        for i, f in enumerate(result["faces"])
    ]


FACE_COLUMNS = ["face", "x", "y", "w", "h", "label", "score", *EMOTIONS]


def summary(result: dict) -> str:
    """One line a person reads first."""
    if not result["face_found"]:
        label = result["faces"][0]["label"] if result["faces"] else "?"
        return f"No face found: classified the whole image as **{label}** ({result['model']})."
    n = len(result["faces"])
    top = result["faces"][0]
    return (
        f"{n} face{'s' if n > 1 else ''} found ({result['model']}); largest: "
        f"**{top['label']}** {top['probabilities'][top['label']]:.0%}."
    )
