"""Live webcam speed: frames per second the Space's live handler sustains, per viewer, on this CPU.

    python benchmarks/bench_live.py                # 1, 2 and 3 viewers (the Space serves 3)
    python benchmarks/bench_live.py --model custom-cnn

Each viewer is a thread feeding the Space's own `live()` handler (space/app.py: detection,
classification, tracking and smoothing, boxes drawn, the bar chart's table) 640x480 webcam frames
back to back, then encoding the output image as JPEG as gradio does for the live tab. Frames: the
astronaut's head and shoulders drifting across a gray frame (a face in view), and the same frame
with no face. The browser asks for a frame every LIVE_STREAM_EVERY seconds (space/views.py), so
that many frames/s per viewer is all a stream can use; the headroom column says how far above
that the server is. What a viewer sees in the browser: bench_live_browser.py.
Model: `--model` (default: the Space's default), shipped when it is, else randomly initialised
(speed does not depend on the weights). Stop any training run first: it shares the cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from bench_video import head_patch, model_folder  # the video benchmark's head and model folders
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def frames(n: int, face: bool) -> list[np.ndarray]:
    """`n` 640x480 RGB webcam frames; with `face`, a head (face ~90 px) drifting sideways."""
    patch = head_patch()
    out = []
    for i in range(n):
        frame = np.full((480, 640, 3), 90, np.uint8)
        if face:
            dx = abs(i % 80 - 40) * 3
            frame[140:340, 160 + dx : 360 + dx] = patch
        out.append(frame)
    return out


def load_app(sources: str):
    """space/app.py imported as a module, serving the model folders in `sources` (comma-separated)."""
    os.environ["FER_MODEL_REPO"] = sources
    spec = importlib.util.spec_from_file_location("app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def viewer(app, model: str, stream: list[np.ndarray]) -> tuple[list[float], int]:
    """Feed one viewer's frames through the handler; per-frame seconds and frames with a box."""
    session, times, boxed = None, [], 0
    for frame in stream:
        t0 = time.perf_counter()
        image, _chart, _status, session = app.live(frame, model, session)
        if isinstance(image, Image.Image):  # not an unchanged picture, which is not sent again
            image.save(io.BytesIO(), format="JPEG")  # gradio's postprocess for format="jpeg"
        times.append(time.perf_counter() - t0)
        boxed += not session.status.startswith("No face")
    return times, boxed


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fer_hub.hardware import describe_cpu
    from fer_hub.models import SHIPPED_MODELS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=SHIPPED_MODELS, default=SHIPPED_MODELS[0])
    name = p.parse_args().model
    with tempfile.TemporaryDirectory() as tmp:
        app = load_app(str(model_folder(name, Path(tmp))))
        model = app.MODEL_CHOICES[0]
        print(
            f"{describe_cpu()}; torch {torch.__version__}; live handler of "
            f"space/app.py with {model} ({app.PREDICTORS[model].backend} classifier), "
            f"640x480 frames, JPEG out"
        )
        cap = 1 / app.LIVE_STREAM_EVERY
        print(f"{'scene':8s} {'viewers':>7s} {'ms/frame p50':>12s} {'p95':>6s} {'frames/s per viewer':>20s} "
              f"{'total':>6s} {'headroom':>8s} {'boxed':>6s}")  # fmt: skip
        for face in (True, False):
            stream = frames(150, face)
            viewer(app, model, stream[:10])  # warm-up
            for n in (1, 2, app.LIVE_VIEWERS):
                t0 = time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    results = list(pool.map(viewer, [app] * n, [model] * n, [stream] * n))
                wall = time.perf_counter() - t0
                times = np.concatenate([t for t, _ in results]) * 1000
                per_viewer = len(stream) / wall
                boxed = sum(b for _, b in results) / (n * len(stream))
                print(
                    f"{'face' if face else 'no face':8s} {n:7d} {np.median(times):12.1f} "
                    f"{np.percentile(times, 95):6.1f} {per_viewer:20.1f} {per_viewer * n:6.1f} "
                    f"{per_viewer / cap:7.1f}x {boxed:6.2f}"
                )
        print(
            f"(headroom: frames/s per viewer over the {cap:.1f} frames/s a stream asks for; boxed: share of frames with a face)"
        )


if __name__ == "__main__":
    main()
