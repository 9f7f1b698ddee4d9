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
    seen_at: float = 0.0  # the frame (or update) it was last matched in
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre, pixels per frame

    def predicted(self, now: float) -> list[float]:
        """Where the box should be at frame `now`, moving as it has been."""
        dx, dy = self.velocity * (now - self.seen_at)
        x, y, w, h = self.box
        return [x + dx, y + dy, w, h]


def _centre(box) -> np.ndarray:
    return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2], float)


class FaceTracker:
    """Assigns a stable id to each face across updates and smooths its probabilities.

    A face matches the track whose box, moved on at the track's own speed to this frame, it
    overlaps best (IoU at least `iou_threshold`); failing that, a face whose centre lies within
    `reach` of its size per frame elapsed (at most two sizes) of that predicted centre still
    matches: at a stride of several frames a small face moves further than its own width.
    `smoothing` is the weight of the past in the moving average (0 = no smoothing); a track with
    no match for more than `max_missed` updates ends, and a face that matches nothing starts a
    new track."""

    def __init__(
        self, iou_threshold: float = 0.3, max_missed: int = 5, smoothing: float = 0.6, reach: float = 0.15
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.reach = reach
        self.tracks: list[Track] = []
        self._next_id = 1
        self._updates = 0

    def _quality(self, track: Track, box, now: float) -> float:
        """How well `box` continues `track` at frame `now`: its IoU when that reaches the
        threshold, else a score below any such IoU when the centres are near enough, else -1."""
        guess = track.predicted(now)
        overlap = iou(guess, box)
        if overlap >= self.iou_threshold:
            return overlap
        limit = min(2.0, self.reach * max(1.0, now - track.seen_at)) * max(guess[2], guess[3], 1)
        distance = float(np.linalg.norm(_centre(guess) - _centre(box)))
        return self.iou_threshold * (1 - distance / limit) if distance < limit else -1.0

    def update(
        self, boxes: list[list[int]], probs: list[np.ndarray], frame: float | None = None
    ) -> list[Track]:
        """Feed one frame's faces (`frame`: its index, for clips analysed every few frames;
        default: one frame per update); returns the track of each face, in the order given."""
        self._updates += 1
        now = float(self._updates if frame is None else frame)
        pairs = sorted(
            (
                (self._quality(t, b, now), ti, bi)
                for ti, t in enumerate(self.tracks)
                for bi, b in enumerate(boxes)
            ),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for quality, ti, bi in pairs:
            if quality < 0:
                break
            if ti in used_tracks or bi in assigned:
                continue
            track = self.tracks[ti]
            elapsed = max(now - track.seen_at, 1e-9)
            step = (_centre(boxes[bi]) - _centre(track.box)) / elapsed
            track.velocity = step if track.hits == 1 else 0.5 * track.velocity + 0.5 * step
            track.box, track.missed, track.hits, track.seen_at = list(boxes[bi]), 0, track.hits + 1, now
            track.probs = self.smoothing * track.probs + (1 - self.smoothing) * np.asarray(probs[bi], float)
            assigned[bi], used_tracks = track, used_tracks | {ti}
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, box in enumerate(boxes):
            if bi not in assigned:
                track = Track(self._next_id, list(box), np.asarray(probs[bi], float).copy(), seen_at=now)
                self._next_id += 1
                self.tracks.append(track)
                assigned[bi] = track
        return [assigned[bi] for bi in range(len(boxes))]

    def smooth(self, result: dict, uncertain_below: float = 0.0, frame: float | None = None) -> dict:
        """A Predictor `result` with each face's probabilities replaced by its track's moving
        average, label and "uncertain" recomputed from it, and the track id added: labels that
        do not flicker from frame to frame. A face that is "unfamiliar" in this frame stays
        uncertain however confident the average is. A result without faces still counts as a
        frame."""
        faces = result["faces"]
        probs = [np.array([f["probabilities"][e] for e in EMOTIONS]) for f in faces]
        out = []
        for face, track in zip(faces, self.update([f["box"] for f in faces], probs, frame)):
            p = track.probs / track.probs.sum()
            out.append(
                {
                    **face,
                    "track": track.id,
                    "label": EMOTIONS[int(p.argmax())],
                    "probabilities": dict(zip(EMOTIONS, p.tolist())),
                    "uncertain": bool(p.max() < uncertain_below or face.get("unfamiliar", False)),
                }
            )
        return {**result, "faces": out}
