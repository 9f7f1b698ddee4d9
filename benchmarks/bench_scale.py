"""Scale: photos/s and video frames/s for the single process and for Ray with 1 and 2 workers,
side by side in one run, and what starting Ray costs.

    python benchmarks/bench_scale.py [--photos 960] [--clips 2] [--seconds 30] [--model FOLDER]
    python benchmarks/bench_scale.py --seconds 120 --segments 4,10,30,60,120   # --segment-seconds

The inputs are generated here: 640x480 JPEG photos with one face (the astronaut's head at a
different place in each) and H.264 clips of 640x480 at 25 fps with a keyframe every 2 s, the
head drifting across. Each engine runs what its command runs, end to end, model loading
included: `fer-hub predict FOLDER --csv` and `fer-hub video CLIP --csv` for the single process;
`fer_hub.distributed.predict_rows` (what `--engine ray` runs) and
`fer_hub.distributed.analyze_videos` (all clips at once, `segment_seconds=4`) on a local Ray
started with as many CPUs as workers. "Ray start" is `ray.init` of that local Ray; "first job"
is a one-photo job on it, which pays for starting the actor and loading the model.
Stop any training run first: it shares the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_video import head_patch  # noqa: E402

from fer_hub.hardware import describe_cpu  # noqa: E402


def make_photos(folder: Path, n: int) -> list[Path]:
    head, rng = head_patch(), np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        frame = np.full((480, 640, 3), 90, np.uint8)
        x, y = rng.integers(0, 640 - 200), rng.integers(0, 480 - 200)
        frame[y : y + 200, x : x + 200] = head
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=90)
    return sorted(folder.iterdir())


def make_clip(path: Path, seconds: float, fps: int = 25) -> Path:
    import av

    head = head_patch()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.codec_context.gop_size = 2 * fps
        for i in range(int(seconds * fps)):
            frame = np.full((480, 640, 3), 90, np.uint8)
            x = int(220 + 200 * np.sin(i / 40))
            frame[140:340, x : x + 200] = head
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def quietly(fn, *args, **kwargs):
    with contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    quietly(fn, *args, **kwargs)
    return time.perf_counter() - t0


def segment_sweep(args, choices: list[float]) -> None:
    """What `--segment-seconds` costs: shorter segments spread a clip over more workers, and
    each pays for loading the model and seeking to its keyframe."""
    from fer_hub import distributed

    tmp = Path(tempfile.mkdtemp(prefix="fer_hub_scale_"))
    clip = make_clip(tmp / "clip.mp4", args.seconds)
    frames = int(args.seconds * 25)
    quietly(distributed.connect, num_cpus=2)
    distributed.video_rows(clip, model=args.model, segment_seconds=args.seconds)  # warm: workers, ONNX cache
    print(f"{describe_cpu()}; one {args.seconds:.0f} s clip, Ray, 2 workers")
    print("\n| --segment-seconds | segments | video frames/s |\n|---|---|---|")
    for seconds in choices:
        from fer_hub.video import keyframe_segments

        n = len(keyframe_segments(clip, seconds))
        t = timed(distributed.video_rows, clip, model=args.model, segment_seconds=seconds)
        print(f"| {seconds:g} | {n} | {frames / t:.1f} |")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=960)
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--seconds", type=float, default=30.0, help="length of each clip")
    p.add_argument("--model", default=str(ROOT / "space" / "checkpoints" / "cnn-model2"))
    p.add_argument(
        "--segments",
        metavar="S,S,...",
        help="instead: video frames/s of one clip of --seconds on Ray with 2 workers, per --segment-seconds S",
    )
    args = p.parse_args()
    if args.segments:
        return segment_sweep(args, [float(s) for s in args.segments.split(",")])

    import ray

    from fer_hub import distributed
    from fer_hub.cli import main as cli

    tmp = Path(tempfile.mkdtemp(prefix="fer_hub_scale_"))
    photos = make_photos(tmp / "photos", args.photos)
    clips = [make_clip(tmp / f"clip{i}.mp4", args.seconds) for i in range(args.clips)]
    frames = int(args.seconds * 25) * len(clips)
    print(
        f"{describe_cpu()}; {len(photos)} photos "
        f"640x480, {len(clips)} clips x {args.seconds:.0f} s at 25 fps ({frames} frames); "
        f"model {Path(args.model).name}"
    )
    rows = []
    quietly(
        cli, ["predict", str(photos[0]), "--csv", str(tmp / "warm.csv"), "--model", args.model]
    )  # ONNX cache
    t_photos = timed(
        cli, ["predict", str(tmp / "photos"), "--csv", str(tmp / "p.csv"), "--model", args.model]
    )
    t_video = sum(
        timed(cli, ["video", str(c), "--csv", str(tmp / f"{c.stem}.csv"), "--model", args.model])
        for c in clips
    )
    rows.append(("single process", "-", len(photos) / t_photos, frames / t_video, float("nan"), float("nan")))
    for workers in (1, 2):
        t0 = time.perf_counter()
        quietly(distributed.connect, num_cpus=workers)
        start = time.perf_counter() - t0
        first = timed(distributed.predict_rows, photos[:1], tmp / f"first{workers}", model=args.model)
        t_photos = timed(
            distributed.predict_rows, photos, tmp / f"parts{workers}", model=args.model, workers=workers
        )
        t_video = timed(
            distributed.analyze_videos, clips, tmp / f"rows{workers}", model=args.model, segment_seconds=4
        )
        rows.append(("Ray", str(workers), len(photos) / t_photos, frames / t_video, start, first))
        ray.shutdown()
    print("\n| engine | workers | photos/s | video frames/s | Ray start (s) | first job (s) |")
    print("|---|---|---|---|---|---|")
    for engine, workers, pps, fps, start, first in rows:
        extra = "- | -" if start != start else f"{start:.1f} | {first:.1f}"
        print(f"| {engine} | {workers} | {pps:.1f} | {fps:.1f} | {extra} |")


if __name__ == "__main__":
    main()
