"""Inference speed on the CPU: one photo at a time, crops in batches, and the Space under load.

    python benchmarks/bench_predict.py                  # photo latency + classifier throughput
    python benchmarks/bench_predict.py --clients 8      # + 8 concurrent gradio_client users

Photo: skimage's astronaut (one face) on a 640x480 canvas, through the whole Predictor with each
face detector (Haar, RetinaFace) and each classifier backend (torch, onnxruntime), decoded and
from JPEG bytes, with `--model` (default: the Space's and the command line's default model).
Crops: both models. Models: the shipped checkpoints when they exist, else randomly initialised
ones (speed does not depend on the weights). Stop any training run first: it shares the cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from bench_video import model_folder  # shipped, else randomly initialised
from PIL import Image

from fer_hub.hardware import describe_cpu
from fer_hub.models import SHIPPED_MODELS

ROOT = Path(__file__).resolve().parents[1]


def pct(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def photo_640x480() -> Image.Image:
    from skimage import data

    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(Image.fromarray(data.astronaut()).resize((480, 480)), (80, 0))
    return canvas


def bench_photo(folders: dict[str, Path], model: str, repeats: int, tta: bool | None) -> None:
    """One 640x480 photo with one face through the whole Predictor, per detector and classifier
    backend, with the image already decoded and with JPEG decoding included. Each configuration
    runs in a process of its own, as a user's program would: the thread pools an earlier one
    leaves behind (torch's, OpenCV's, another onnxruntime session's) would otherwise share the
    cores with the one being timed."""
    import json
    import subprocess
    import sys

    from fer_hub import Predictor

    print(f"photo 640x480 (skimage astronaut), one face, {model}, {repeats} calls after 10 warm-up:")
    built = []
    for _ in range(2):  # main() starts with an empty export cache: the first build exports
        t0 = time.perf_counter()
        plain = Predictor.from_pretrained(folders[model], tta=tta)
        built.append(time.perf_counter() - t0)
    defaults = (plain.detector.kind, plain.backend)  # what Predictor.from_pretrained(path) uses
    scoring = "flip TTA (face + mirror in one batch)" if plain.tta else "plain (one pass)"
    print(
        f"  scoring: {scoring}"
        + (" - the model's own default" if tta is None else " - set by --tta/--no-tta")
    )
    print(
        f"  Predictor.from_pretrained with defaults {defaults}: built in {built[0]:.2f} s the first "
        f"time (ONNX export included), {built[1]:.2f} s again (export cached)"
    )
    for detector in ("haar", "retinaface"):
        for backend in ("torch", "onnx", *(["int8"] if plain.backend == "int8" else [])):
            config = {"folder": str(folders[model]), "detector": detector, "backend": backend, "tta": tta}
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--one-photo", json.dumps(config), "--repeats", str(repeats)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            default = "  <- the defaults" if (detector, backend) == defaults else ""
            print(f"  {detector:10s} + {backend:5s} classifier | {out}{default}")
    photo = photo_640x480()
    crops = [photo.crop((170, 40, 400, 270))] * 64
    for name in SHIPPED_MODELS:
        figures = []
        int8 = Predictor.from_pretrained(folders[name]).backend == "int8"
        for backend in ("torch", "onnx", *(["int8"] if int8 else [])):
            pred = Predictor.from_pretrained(folders[name], backend=backend, tta=tta)
            for _ in range(5):
                pred.classify(crops)
            t0 = time.perf_counter()
            for _ in range(10):
                pred.classify(crops)
            batch = 640 / (time.perf_counter() - t0)
            single = []
            for _ in range(max(20, repeats // 4)):
                t0 = time.perf_counter()
                pred.classify(crops[:1])
                single.append(time.perf_counter() - t0)
            figures.append(
                f"{backend} {batch:,.0f} crops/s in batches of 64, {pct(single, 50):.2f} ms for one crop"
            )
        scored = "flip TTA" if pred.tta else "plain"
        print(f"classifier {name} ({scored}): " + "; ".join(figures))


def time_one_photo(config: dict, repeats: int) -> None:
    """Time one configuration of `bench_photo` (in this fresh process) and print its figures."""
    import io

    from fer_hub import Predictor

    photo = photo_640x480()
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=90)
    jpeg, array = buf.getvalue(), np.asarray(photo)
    predictor = Predictor.from_pretrained(
        config["folder"], detector=config["detector"], backend=config["backend"], tta=config["tta"]
    )
    for _ in range(10):  # warm-up: first calls allocate and pick kernels
        result = predictor(array)
    assert result["face_found"] and len(result["faces"]) == 1, result
    figures = []
    for what, image in (("decoded", array), ("JPEG bytes", jpeg)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            predictor(image)
            times.append(time.perf_counter() - t0)
        figures.append(f"{what}: median {pct(times, 50):5.1f} ms, p95 {pct(times, 95):5.1f} ms")
    print(" | ".join(figures))


def bench_clients(folders: dict[str, Path], model: str, clients: int, requests: int) -> None:
    import socket

    from bench_live import load_app
    from gradio_client import Client, handle_file

    app = load_app(",".join(str(folders[name]) for name in SHIPPED_MODELS))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, **app.LAUNCH)
    path = Path(tempfile.mkdtemp()) / "photo.jpg"
    photo_640x480().save(path, quality=90)
    try:

        def user(_):
            client = Client(url, verbose=False)
            lat, errors = [], 0
            for _ in range(requests):
                t0 = time.perf_counter()
                try:
                    r = client.predict(handle_file(str(path)), model, api_name="/predict")
                    errors += not r["face_found"]
                except Exception:
                    errors += 1
                lat.append(time.perf_counter() - t0)
            return lat, errors

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(user, range(clients)))
        wall = time.perf_counter() - t0
        lat = [x for r, _ in results for x in r]
        errors = sum(e for _, e in results)
        print(
            f"{clients} concurrent gradio_client users x {requests} requests to /predict: "
            f"{errors} errors, p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, "
            f"{len(lat) / wall:.1f} requests/s"
        )
    finally:
        app.demo.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=SHIPPED_MODELS, default=SHIPPED_MODELS[0], help="photo and Space model")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force flip TTA on or off (default: each model's own scoring, from its config.json)",
    )
    p.add_argument("--clients", type=int, default=0, help="also load-test the Space with N clients")
    p.add_argument("--requests", type=int, default=25, help="requests per client")
    p.add_argument("--one-photo", help=argparse.SUPPRESS)  # bench_photo's child process
    args = p.parse_args()
    if args.one_photo:
        import json

        time_one_photo(json.loads(args.one_photo), args.repeats)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    print(f"{describe_cpu()}; torch {torch.__version__} ({torch.get_num_threads()} threads), CPU only")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FER_HUB_CACHE"] = str(Path(tmp) / "cache")  # the user's cache stays untouched
        folders = {name: model_folder(name, Path(tmp)) for name in SHIPPED_MODELS}
        bench_photo(folders, args.model, args.repeats, args.tta)
        if args.clients:
            bench_clients(folders, args.model, args.clients, args.requests)


if __name__ == "__main__":
    main()
