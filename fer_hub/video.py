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

import bisect
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .faces import WORK_SIZE  # the Predictor's too: decoding straight to it keeps 4K frames small
from .labels import EMOTIONS
from .results import FACE_FIELDS
from .tracking import FaceTracker

__all__ = [
    "VIDEO_COLUMNS",
    "VideoError",
    "VideoInfo",
    "VideoRows",
    "Segment",
    "probe",
    "keyframe_segments",
    "detect_segment",
    "tracked_rows",
    "analyze_video",
    "track_summary",
]

# the probabilities of FACE_FIELDS smoothed, as `fer-hub predict` names them, then the raw ones
VIDEO_COLUMNS = ["frame", "time_s", "track", *FACE_FIELDS, *(f"raw_{e}" for e in EMOTIONS)]


# One analysed frame: (index, time, boxes, raw probabilities, unfamiliar flags, scale).
Detection = tuple[int, float, list, np.ndarray, np.ndarray, float]


class VideoError(InputError):
    """The file could not be read as a video; the message says which file and why (`reason`
    is in fer_hub's own words, never a library's message, which may hold paths)."""


@dataclass
class VideoInfo:
    fps: float
    frames: int  # from the container; an estimate (duration x fps) when it does not say; 0: unknown
    width: int
    height: int
    duration: float  # seconds; 0.0 when the container does not say (a raw H.264 stream)


class VideoRows(list):
    """The rows of `analyze_video`, a plain list, plus what the decoding found: `decoded` (frames
    read), `analysed` (frames searched for faces) and `stopped` (None, or why the analysis ended
    before the clip did: "frames" when `max_frames` was reached, "time" when `max_seconds`)."""

    decoded: int = 0
    analysed: int = 0
    stopped: str | None = None


STILL_IMAGE = "a still image, not a video"
# FFmpeg's demuxers for single pictures: a JPEG or PNG opens as a one-frame "video".
_STILL_FORMATS = {"image2", "jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"}


def _open(path: str | os.PathLike, max_pixels: int | None = None):
    import av

    path = Path(path)
    if path.is_dir():
        raise VideoError("a folder, not a video file", path)
    if not path.is_file():
        raise VideoError("no such file", path)
    try:
        try:
            # Decoders skip every frame while FFmpeg probes the streams: probing decodes a frame
            # otherwise, ~150 MB for an 8192 x 8192 clip, before its size could be refused.
            container = av.open(str(path), stream_options=[{"skip_frame": "all"}] * 16)
        except ValueError as e:
            if isinstance(e, av.error.FFmpegError):
                raise
            container = av.open(str(path))  # MPEG-PS/TS name their streams only while probing
    except (av.error.FFmpegError, UnicodeDecodeError):
        raise VideoError("not a video FFmpeg can read", path) from None
    try:
        if not container.streams.video:
            raise VideoError("has no video stream", path)
        ctx = container.streams.video[0].codec_context
        if max_pixels and ctx.width * ctx.height > max_pixels:
            raise VideoError(_too_large(ctx.width, ctx.height, max_pixels), path)
        if set(container.format.name.split(",")) & _STILL_FORMATS:
            try:  # named like a picture; a text file named .jpg gets here too
                next(container.decode(video=0))
            except (av.error.FFmpegError, StopIteration):
                raise VideoError("not a video FFmpeg can read", path) from None
            raise VideoError(STILL_IMAGE, path)
    except BaseException:
        container.close()
        raise
    return container


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return f"frames of {width} x {height} pixels, over the limit of {max_pixels / 1e6:.1f} megapixels"


def probe(path: str | os.PathLike, *, max_pixels: int | None = None) -> VideoInfo:
    """Frame rate, frame count, size and duration of a video file, as its container states them
    (a raw stream states no count or duration: 0). `max_pixels` refuses larger frames."""
    with _open(path, max_pixels) as container:
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


def _frames(
    path, work_size: int | None = None, max_pixels: int | None = None, segment: Segment | None = None
) -> Iterator[tuple[int, float, np.ndarray, float]]:
    """(index, time in seconds, RGB uint8 array, scale) for every frame, in order, or for the
    frames of one `segment` only; a frame whose longer side exceeds `work_size` is scaled down
    by FFmpeg as it leaves the decoder (scale < 1), so no full-size RGB copy of it is ever made."""
    import av

    with _open(path, max_pixels) as container:
        stream = container.streams.video[0]
        # Slice threads only: frame threading keeps a decoder context, reference frames
        # included, per thread, which multiplied the memory of a large clip (benchmarks/bench_load.py).
        stream.thread_type = "SLICE"
        fps = float(stream.average_rate or 25)
        if segment is not None and segment.first:
            container.seek(segment.pts[0], stream=stream, backward=True, any_frame=False)
            frames = ((segment.index(f.pts), f) for f in container.decode(stream))
        else:
            frames = enumerate(container.decode(stream))
        i = -1  # the last frame decoded: none when the first one fails
        try:
            for i, frame in frames:
                if segment is not None and i < segment.first:
                    continue  # decoded from the keyframe before the segment's start
                if segment is not None and i >= segment.end:
                    break
                if max_pixels and frame.width * frame.height > max_pixels:  # a size change mid-stream
                    raise VideoError(_too_large(frame.width, frame.height, max_pixels), path)
                t = float(frame.time) if frame.time is not None else i / fps
                scale = min(1.0, work_size / max(frame.width, frame.height)) if work_size else 1.0
                if scale < 1.0:
                    w, h = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
                    rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
                    yield i, t, rgb.to_ndarray(), scale
                else:
                    yield i, t, frame.to_ndarray(format="rgb24"), 1.0
        except av.error.FFmpegError:
            raise VideoError(f"decoding failed after {i + 1} frame{'' if i == 0 else 's'}", path) from None


@dataclass(frozen=True)
class Segment:
    """Frames `first` to `end` (exclusive, in presentation order) of a clip, starting at a
    keyframe, so a worker can decode them alone: `pts` holds those frames' timestamps, in
    order; it seeks to the first, and a decoded frame's timestamp gives back its index in the
    whole clip (the decoder's own count restarts at a seek)."""

    first: int
    end: int
    pts: tuple[int, ...]

    def index(self, pts: int) -> int:
        """The clip index of the frame with timestamp `pts`; first - 1 for a frame decoded from
        before the segment."""
        return self.first - 1 if pts < self.pts[0] else self.first + bisect.bisect_left(self.pts, pts)


def keyframe_segments(
    path: str | os.PathLike, seconds: float, *, max_pixels: int | None = None
) -> list[Segment]:
    """The clip cut into segments of about `seconds` each, every one starting at a keyframe (the
    first keyframe at or after each multiple of `seconds` past the previous cut), found by
    reading the container's packets, without decoding. A stream that carries no timestamps
    (a raw H.264 file) cannot be cut: one segment."""
    with _open(path, max_pixels) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
        tb = float(stream.time_base)  # read while open: a closed container's stream is gone
    if not packets or any(pts is None for pts, _ in packets):
        return [Segment(0, sys.maxsize, ())]
    pts = tuple(sorted(pts for pts, _ in packets))
    cuts, last = [0], pts[0]
    for p in sorted(p for p, key in packets if key):
        if (p - last) * tb >= seconds:
            cuts.append(bisect.bisect_left(pts, p))
            last = p
    ends = cuts[1:] + [len(pts)]
    # each segment carries its own timestamps only: a task's arguments do not grow with the clip
    return [Segment(a, b, pts[a:b]) for a, b in zip(cuts, ends)]


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
    max_frames: int | None = None,
    max_seconds: float | None = None,
    max_pixels: int | None = None,
    work_size: int | None = WORK_SIZE,
) -> VideoRows:
    """Rows (dicts with VIDEO_COLUMNS) for every face in every `every`-th frame of `path`.

    Bounds, for a server that analyses strangers' clips: `max_frames` stops after that many
    analysed frames, counted as they are decoded (whatever the container claims);
    `max_seconds` stops once that much wall-clock time has passed; `max_pixels` refuses a clip
    with larger frames before decoding any. Frames larger than `work_size` on their longer side
    are decoded downscaled (boxes in the rows are still in the clip's pixels), so memory does
    not grow with the clip's resolution. The rows say whether and why the analysis stopped
    early (`VideoRows.stopped`).

    `progress`: a tqdm bar with ETA (None: only on a terminal). `on_progress(done, total)` is
    called after each chunk with frames decoded so far and the frames expected (the container's
    count, or an estimate; 0 when unknown), e.g. for a web UI's progress bar."""
    import time

    from tqdm.auto import tqdm

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    info = probe(path, max_pixels=max_pixels)
    expected = info.frames if not max_frames else min(info.frames or max_frames * every, max_frames * every)
    batch = _Batch(predictor, tracker or FaceTracker(), annotate_to, info.fps)
    rows = batch.rows
    bar = tqdm(
        total=expected or None,
        desc=f"analysing {Path(path).name}",
        unit="frame",
        disable=None if progress is None else not progress,  # None: a bar on terminals only
    )

    def flush() -> None:
        bar.update(batch.flush())
        if on_progress:
            on_progress(rows.decoded, expected)

    start = time.monotonic()
    try:
        for index, t, frame, scale in _frames(path, work_size, max_pixels):
            if max_frames and rows.analysed >= max_frames:
                rows.stopped = "frames"
                break
            if max_seconds and time.monotonic() - start > max_seconds:
                rows.stopped = "time"
                break
            batch.add(index, t, frame, scale, analyse=index % every == 0)
            if batch.analysed >= chunk:
                flush()
        flush()
    finally:
        bar.close()
        batch.close()
    return rows


class _Batch:
    """Frames waiting for the network: analysed ones keep only their faces' crops (the frame
    itself only when an annotated video is written), so a batch of 16 costs kilobytes a face,
    not 16 frames. `flush` classifies all their faces at once, tracks and smooths them, and
    appends the rows."""

    def __init__(self, predictor, tracker: FaceTracker, annotate_to, fps: float) -> None:
        self.predictor, self.tracker, self.annotate_to, self.fps = predictor, tracker, annotate_to, fps
        self.rows = VideoRows()
        self.pending: list[tuple[int, float, tuple | None, np.ndarray | None, float]] = []
        self.writer: _Writer | None = None
        # what the annotated video shows between analysed frames
        self.shown: dict = {"model": predictor.name, "face_found": False, "faces": []}

    @property
    def analysed(self) -> int:
        return sum(p[2] is not None for p in self.pending)

    def add(self, index: int, t: float, frame: np.ndarray, scale: float, analyse: bool) -> None:
        self.rows.decoded += 1
        if self.annotate_to and self.writer is None:
            self.writer = _Writer(self.annotate_to, self.fps, frame.shape[1], frame.shape[0])
        found = None
        if analyse:
            found = self.predictor.find_faces(frame, stream=True)
            self.rows.analysed += 1
        self.pending.append((index, t, found, frame if self.writer else None, scale))

    def flush(self) -> int:
        """Classify, track and record the pending frames; returns how many there were."""
        from .draw import annotate

        crops = [c for _, _, found, _, _ in self.pending if found and found[0] for c in found[3]]
        probs, unfamiliar, _ = self.predictor.score(crops)
        probs, unfamiliar = probs.numpy(), unfamiliar.numpy()
        k = 0
        for index, t, found, frame, scale in self.pending:
            if found is not None:
                boxes = [b.as_list() for b in found[1]]
                raw, odd = probs[k : k + len(boxes)], unfamiliar[k : k + len(boxes)]
                k += len(boxes)
                self._record(index, t, boxes, raw, odd, scale)
            if self.writer is not None:
                self.writer.write(np.asarray(annotate(frame, self.shown, max_side=None)))
        done = len(self.pending)
        self.pending.clear()
        return done

    def _record(
        self, index: int, t: float, boxes: list, raw: np.ndarray, odd: np.ndarray, scale: float
    ) -> None:
        found_now = {
            "model": self.predictor.name,
            "face_found": bool(boxes),
            "faces": [
                {"box": b, "probabilities": dict(zip(EMOTIONS, p.tolist())), "unfamiliar": bool(u)}
                for b, p, u in zip(boxes, raw, odd)
            ],
        }
        # as the live webcam does; the frame index lets tracks keep up at any stride
        self.shown = self.tracker.smooth(found_now, self.predictor.uncertain_below, frame=index)
        for face, p_raw in zip(self.shown["faces"], raw):
            box = face["box"] if scale == 1.0 else [round(v / scale) for v in face["box"]]
            self.rows.append(
                {
                    "frame": index,
                    "time_s": round(t, 4),
                    "track": face["track"],
                    **dict(zip("xywh", box)),
                    "label": face["label"],
                    "uncertain": face["uncertain"],
                    "unfamiliar": face["unfamiliar"],
                    **{e: face["probabilities"][e] for e in EMOTIONS},
                    **{f"raw_{e}": float(v) for e, v in zip(EMOTIONS, p_raw)},
                }
            )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Detections(_Batch):
    """A `_Batch` that keeps each analysed frame's raw detections instead of tracking them."""

    def __init__(self, predictor) -> None:
        super().__init__(predictor, FaceTracker(), None, 0.0)
        self.found: list[Detection] = []

    def _record(
        self, index: int, t: float, boxes: list, raw: np.ndarray, odd: np.ndarray, scale: float
    ) -> None:
        self.found.append((index, t, boxes, raw, odd, scale))


def detect_segment(
    path: str | os.PathLike,
    predictor,
    segment: Segment,
    *,
    every: int = 1,
    chunk: int = 16,
    work_size: int | None = WORK_SIZE,
) -> tuple[list[Detection], int]:
    """The first half of `analyze_video` for one segment, run where the segment is decoded:
    (index, time, boxes, raw probabilities, unfamiliar flags, scale) per analysed frame, in
    order, and the number of frames decoded. `tracked_rows` does the second half over all segments, in order."""
    batch = _Detections(predictor)
    for index, t, frame, scale in _frames(path, work_size, None, segment):
        batch.add(index, t, frame, scale, analyse=index % every == 0)
        if batch.analysed >= chunk:
            batch.flush()
    batch.flush()
    return batch.found, batch.rows.decoded


def tracked_rows(detections: list[Detection], name: str, uncertain_below: float) -> VideoRows:
    """`analyze_video`'s rows from the raw detections of all of a clip's analysed frames, in
    order: the same tracker, the same smoothing, so they are the rows one process gives."""
    from types import SimpleNamespace

    batch = _Batch(SimpleNamespace(name=name, uncertain_below=uncertain_below), FaceTracker(), None, 0.0)
    for found in detections:
        batch._record(*found)
    batch.rows.analysed = len(detections)
    return batch.rows


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
