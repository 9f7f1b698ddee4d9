"""Video analysis speed: frames per second of a 640x480 clip at stride 1 and 5, and how the cost
grows with the number of faces in view.

    python benchmarks/bench_video.py [--model custom-cnn]

The clips are generated here (PyAV, H.264): 1, 2 or 4 copies of the astronaut's head and
shoulders drifting across a 640x480 frame for 150 frames (6 s at 25 fps). Model: `--model`
(default: the command line's default), from space/checkpoints when it ships, else randomly
initialised (speed does not depend on the weights).
Stop any training run first: it shares the cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def head_patch() -> np.ndarray:
    """The astronaut's head and shoulders, 200x200 RGB (the face ~90 px tall)."""
    photo = Image.open(ROOT / "space" / "examples" / "astronaut.jpg").convert("RGB")
    return np.asarray(photo.crop((116, 6, 336, 226)).resize((200, 200)))


def model_folder(name: str, tmp: Path) -> Path:
    """space/checkpoints/<name> when it ships, else a randomly initialised model saved under
    `tmp` (speed does not depend on the weights)."""
    from fer_hub.models import MODELS

    shipped = ROOT / "space" / "checkpoints" / name
    if (shipped / "model.safetensors").is_file():
        return shipped
    torch.manual_seed(0)
    MODELS[name]().save_pretrained(tmp / name)
    print(f"(no shipped checkpoint: timing a randomly initialised {name})")
    return tmp / name


def make_clip(path: Path, faces: int, frames: int = 150, fps: int = 25) -> Path:
    """`faces` head-and-shoulders patches (200 px, the face ~90 px tall) on a gray 640x480
    frame, each drifting sideways by up to 40 px."""
    import av

    patch = head_patch()
    spots = [(60, 140), (380, 140), (60, 20), (380, 260)][:faces]
    if faces == 4:
        spots = [(40, 20), (380, 20), (40, 260), (380, 260)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(frames):
            frame = np.full((480, 640, 3), 90, np.uint8)
            dx = abs(i % 80 - 40)  # drift right and back
            for x, y in spots:
                frame[y : y + 200, x + dx : x + dx + 200] = patch
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fer_hub import Predictor
    from fer_hub.hardware import describe_cpu
    from fer_hub.models import SHIPPED_MODELS
    from fer_hub.video import analyze_video, probe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=SHIPPED_MODELS, default=SHIPPED_MODELS[0])
    name = p.parse_args().model
    with tempfile.TemporaryDirectory() as tmp:
        predictor = Predictor.from_pretrained(model_folder(name, Path(tmp)))
        print(f"{describe_cpu()}; torch {torch.__version__} ({torch.get_num_threads()} threads), {name}")
        for faces in (1, 2, 4):
            clip = make_clip(Path(tmp) / f"{faces}.mp4", faces)
            info = probe(clip)
            for every in (1, 5):
                analyze_video(clip, predictor, every=every, progress=False)  # warm-up
                t0 = time.perf_counter()
                rows = analyze_video(clip, predictor, every=every, progress=False)
                dt = time.perf_counter() - t0
                found = len(rows) / (info.frames / every)
                print(
                    f"640x480, {faces} face(s) in view, every {every}: {info.frames / dt:6.1f} video frames/s "
                    f"({info.frames / every / dt:5.1f} analysed frames/s; {found:.2f} faces found per analysed frame)"
                )


if __name__ == "__main__":
    main()
