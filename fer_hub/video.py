"""Expressions over time in a video: faces tracked across frames, probabilities smoothed per face.

    rows = analyze_video("clip.mp4", Predictor.from_pretrained(...), every=5)

Frames are decoded with PyAV (FFmpeg in a wheel: mp4, webm, mov, mkv, avi, ...). Every `every`-th
frame is analysed; faces of `chunk` analysed frames go through the network in one batch, then
`fer_hub.tracking.FaceTracker` gives each face a track id and smooths its probabilities. One
row per face per analysed frame (`VIDEO_COLUMNS`), with both the smoothed and the raw
probabilities. `annotate_to` writes the whole video back with boxes and labels (faces held
between analysed frames).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import EMOTIONS
from .tracking import FaceTracker

__all__ = ["VIDEO_COLUMNS", "VideoError", "VideoInfo", "probe", "analyze_video", "track_summary"]

VIDEO_COLUMNS = [
    "frame",
    "time_s",
    "track",
    "x",
    "y",
    "w",
    "h",
    "label",
    "uncertain",
    *(f"p_{e}" for e in EMOTIONS),
    *(f"raw_{e}" for e in EMOTIONS),
]


class VideoError(ValueError):
    """The file could not be read as a video; the message says which file and why."""


@dataclass
class VideoInfo:
    fps: float
    frames: int  # from the container; an estimate (duration x fps) when it does not say
    width: int
    height: int
    duration: float  # seconds


def _open(path: str | os.PathLike):
    import av

    path = Path(path)
    if path.is_dir():
        raise VideoError(f"{path}: a folder, not a video file")
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError(f"{path}: not a video FFmpeg can read ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count, size and duration of a video file."""
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        frames = stream.frames or round(duration * fps)
        return VideoInfo(fps, int(frames), stream.codec_context.width, stream.codec_context.height, duration)


def _frames(path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in seconds, RGB uint8 array) for every frame, in order."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or 25)
        i = -1  # the last frame decoded: none when the first one fails
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / fps
                yield i, t, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed after {i + 1} frame(s) ({e})") from None


class _Writer:
    """H.264 mp4 (yuv420p, so every player opens it) of RGB frames."""

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int) -> None:
        from fractions import Fraction

        import av

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"

    def write(self, rgb: np.ndarray) -> None:
        import av

        rgb = np.ascontiguousarray(rgb[: self.stream.height, : self.stream.width])
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def analyze_video(
    path: str | os.PathLike,
    predictor,
    *,
    every: int = 1,
    chunk: int = 16,
    tracker: FaceTracker | None = None,
    annotate_to: str | os.PathLike | None = None,
    progress: bool | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Rows (dicts with VIDEO_COLUMNS) for every face in every `every`-th frame of `path`.

    `progress`: a tqdm bar with ETA (None: only on a terminal). `on_progress(done, total)` is
    called after each chunk, e.g. for a web UI's progress bar."""
    from tqdm.auto import tqdm

    from .draw import annotate

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    info = probe(path)
    tracker = tracker or FaceTracker()
    writer = _Writer(annotate_to, info.fps, info.width, info.height) if annotate_to else None
    rows: list[dict] = []
    shown: dict = {"model": predictor.name, "face_found": False, "faces": []}  # held between analysed frames
    pending: list[tuple[int, float, np.ndarray | None, bool]] = []
    bar = tqdm(
        total=info.frames or None,
        desc=f"analysing {Path(path).name}",
        unit="frame",
        disable=None if progress is None else not progress,  # None: a bar on terminals only
    )

    def flush() -> None:
        nonlocal shown
        analysed = [p for p in pending if p[3]]
        found = [predictor.find_faces(frame) for _, _, frame, _ in analysed]
        crops = [c for face_found, _, _, cs in found if face_found for c in cs]
        probs = predictor.classify(crops).numpy() if crops else np.empty((0, len(EMOTIONS)))
        k, results = 0, iter(found)
        for index, t, frame, is_analysed in pending:
            if is_analysed:
                face_found, boxes, _, _ = next(results)
                boxes = [b.as_list() for b in boxes] if face_found else []
                raw = probs[k : k + len(boxes)]
                k += len(boxes)
                found_now = {
                    "model": predictor.name,
                    "face_found": bool(boxes),
                    "faces": [
                        {"box": b, "probabilities": dict(zip(EMOTIONS, p.tolist()))}
                        for b, p in zip(boxes, raw)
                    ],
                }
                shown = tracker.smooth(found_now, predictor.uncertain_below)  # as the live webcam does
                for face, p_raw in zip(shown["faces"], raw):
                    rows.append(
                        {
                            "frame": index,
                            "time_s": round(t, 4),
                            "track": face["track"],
                            **dict(zip("xywh", face["box"])),
                            "label": face["label"],
                            "uncertain": face["uncertain"],
                            **{f"p_{e}": face["probabilities"][e] for e in EMOTIONS},
                            **{f"raw_{e}": float(v) for e, v in zip(EMOTIONS, p_raw)},
                        }
                    )
            if writer is not None:
                writer.write(np.asarray(annotate(frame, shown, max_side=None)))
        bar.update(len(pending))
        if on_progress:
            on_progress(bar.n, info.frames)
        pending.clear()

    try:
        for index, t, frame in _frames(path):
            is_analysed = index % every == 0
            pending.append((index, t, frame if (is_analysed or writer) else None, is_analysed))
            if sum(p[3] for p in pending) >= chunk:
                flush()
        flush()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return rows


def track_summary(rows: list[dict]) -> list[dict]:
    """Per track: first and last time seen, frames analysed, and the share of those frames
    with each (smoothed) label."""
    out = []
    for track in sorted({r["track"] for r in rows}):
        mine = [r for r in rows if r["track"] == track]
        shares = {e: sum(r["label"] == e for r in mine) / len(mine) for e in EMOTIONS}
        out.append(
            {
                "track": track,
                "from_s": mine[0]["time_s"],
                "to_s": mine[-1]["time_s"],
                "frames": len(mine),
                **{f"share_{e}": round(v, 4) for e, v in shares.items()},
            }
        )
    return out
