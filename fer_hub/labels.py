"""The seven FER-2013 expressions, and mapping any dataset's label names onto them.

Copies of FER-2013 disagree on the index order of their classes, so labels are always matched
by *name*; only bare integers with no names attached fall back to the original Kaggle CSV order.
"""

from __future__ import annotations

from .errors import InputError

__all__ = ["EMOTIONS", "KAGGLE_ORDER", "canonical_emotion", "label_mapping"]

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Index order of the original fer2013.csv `emotion` column (0=Angry ... 6=Neutral).
KAGGLE_ORDER: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

_ALIASES = {
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "afraid": "fear",
    "fearful": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "smile": "happy",
    "neutrality": "neutral",
    "calm": "neutral",
    "sadness": "sad",
    "unhappy": "sad",
    "surprised": "surprise",
    "suprise": "surprise",  # misspelling found in some copies
}


def canonical_emotion(name: str) -> str | None:
    """Return the EMOTIONS entry a label name means (case-insensitive, aliases), or None."""
    key = str(name).strip().lower().replace("_", " ").replace("-", " ")
    key = _ALIASES.get(key, key)
    return key if key in EMOTIONS else None


def label_mapping(names: list[str] | tuple[str, ...], *, where: str = "dataset") -> list[int]:
    """Map a dataset's class names (in its own index order) to indices into EMOTIONS.

    Raises ValueError naming every name that is not one of the seven expressions.
    """
    mapping, unknown = [], []
    for name in names:
        canon = canonical_emotion(name)
        if canon is None:
            unknown.append(name)
        else:
            mapping.append(EMOTIONS.index(canon))
    if unknown:
        raise InputError(
            f"{where}: unknown label name(s) {unknown}; expected the seven FER-2013 expressions "
            f"{list(EMOTIONS)} (aliases such as 'anger', 'happiness', 'sadness', 'surprised' work too)"
        )
    if len(set(mapping)) != len(mapping):
        raise InputError(f"{where}: label names {list(names)} name the same expression twice")
    return mapping
