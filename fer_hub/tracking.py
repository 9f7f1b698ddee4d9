"""Following faces from frame to frame, and smoothing each face's probabilities over time.

Shared by the video command and the Space's live webcam: a face keeps its track id while its
box overlaps the previous one (IoU matching, greedy, best overlap first), survives a few missed
frames, and its probabilities are an exponential moving average, so a label does not flicker
with every frame's noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .labels import EMOTIONS

__all__ = ["iou", "Track", "FaceTracker"]


def iou(a, b) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: list[int]
    probs: np.ndarray  # smoothed, EMOTIONS order
    missed: int = 0  # consecutive updates without a matching face
    hits: int = 1
    history: list = field(default_factory=list, repr=False)


class FaceTracker:
    """Assigns a stable id to each face across updates and smooths its probabilities.

    `smoothing` is the weight of the past in the moving average (0 = no smoothing); a track with
    no match for more than `max_missed` updates ends, and a face that matches nothing starts a
    new track."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5, smoothing: float = 0.6) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: list[list[int]], probs: list[np.ndarray]) -> list[Track]:
        """Feed one frame's faces; returns the track of each face, in the order given."""
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_tracks or bi in assigned:
                continue
            track = self.tracks[ti]
            track.box, track.missed, track.hits = list(boxes[bi]), 0, track.hits + 1
            track.probs = self.smoothing * track.probs + (1 - self.smoothing) * np.asarray(probs[bi], float)
            assigned[bi], used_tracks = track, used_tracks | {ti}
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, box in enumerate(boxes):
            if bi not in assigned:
                track = Track(self._next_id, list(box), np.asarray(probs[bi], float).copy())
                self._next_id += 1
                self.tracks.append(track)
                assigned[bi] = track
        return [assigned[bi] for bi in range(len(boxes))]

    def smooth(self, result: dict, uncertain_below: float = 0.0) -> dict:
        """A Predictor `result` with each face's probabilities replaced by its track's moving
        average, label and "uncertain" recomputed from it, and the track id added: labels that
        do not flicker from frame to frame. A result without faces still counts as a frame."""
        faces = result["faces"]
        probs = [np.array([f["probabilities"][e] for e in EMOTIONS]) for f in faces]
        out = []
        for face, track in zip(faces, self.update([f["box"] for f in faces], probs)):
            p = track.probs / track.probs.sum()
            out.append(
                {
                    **face,
                    "track": track.id,
                    "label": EMOTIONS[int(p.argmax())],
                    "probabilities": dict(zip(EMOTIONS, p.tolist())),
                    "uncertain": bool(p.max() < uncertain_below),
                }
            )
        return {**result, "faces": out}
