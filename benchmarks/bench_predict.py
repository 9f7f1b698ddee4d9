"""Inference speed on the CPU: one photo at a time, crops in batches, and the Space under load.

    python benchmarks/bench_predict.py                  # photo latency + batch throughput
    python benchmarks/bench_predict.py --clients 8      # + 8 concurrent gradio_client users

Photo: skimage's astronaut (one face) on a 640x480 canvas. Model: CustomCNN from
space/checkpoints/custom-cnn when it exists, else a randomly initialised one (speed does not
depend on the weights). Prints median and p95 milliseconds and crops/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def pct(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def photo_640x480() -> Image.Image:
    from skimage import data

    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(Image.fromarray(data.astronaut()).resize((480, 480)), (80, 0))
    return canvas


def checkpoints(tmp: Path) -> Path:
    from fer_hub import CnnModel2, CustomCNN

    shipped = ROOT / "space" / "checkpoints"
    if all((shipped / n / "model.safetensors").is_file() for n in ("custom-cnn", "cnn-model2")):
        return shipped
    torch.manual_seed(0)
    CustomCNN().save_pretrained(tmp / "custom-cnn")
    CnnModel2().save_pretrained(tmp / "cnn-model2")
    print("(no shipped checkpoints: timing randomly initialised models)")
    return tmp


def bench_photo(ckpt: Path, repeats: int) -> None:
    from fer_hub import Predictor

    predictor = Predictor.from_pretrained(ckpt / "custom-cnn")
    photo = photo_640x480()
    for _ in range(10):  # warm-up: first calls allocate and pick kernels
        result = predictor(photo)
    assert result["face_found"] and len(result["faces"]) == 1, result
    times, det = [], []
    gray = photo.convert("L")
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor(photo)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        predictor.detector(gray)
        det.append(time.perf_counter() - t0)
    print(
        f"photo 640x480, 1 face, CustomCNN: median {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms "
        f"(face detection alone: median {pct(det, 50):.1f} ms) over {repeats} calls"
    )
    # The Space's live webcam tab uses a coarser detector (webcam faces are large).
    from fer_hub.faces import FaceDetector

    live = Predictor(predictor.model, detector=FaceDetector(detect_size=240, min_face=0.2))
    if not live(photo)["face_found"]:
        print("live-webcam settings (detect_size 240, min_face 0.2): the face in this photo is NOT found")
    live_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        live(photo)
        live_times.append(time.perf_counter() - t0)
    print(
        f"live-webcam settings (detect_size 240, min_face 0.2): median {pct(live_times, 50):.1f} ms, "
        f"p95 {pct(live_times, 95):.1f} ms, i.e. up to {1000 / pct(live_times, 50):.0f} frames/s of compute"
    )
    crops = [photo.crop((170, 40, 400, 270))] * 64
    predictor.classify(crops)
    t0 = time.perf_counter()
    n = 20
    for _ in range(n):
        predictor.classify(crops)
    dt = time.perf_counter() - t0
    print(f"classification, batches of 64 crops: {64 * n / dt:,.0f} crops/s (torch)")
    bench_onnx(ckpt, photo, crops, repeats)


def bench_onnx(ckpt: Path, photo: Image.Image, crops: list, repeats: int) -> None:
    """The same model exported to ONNX and run by onnxruntime, against torch."""
    from fer_hub import Predictor, load_model
    from fer_hub.onnx_model import export_onnx

    for name in ("custom-cnn", "cnn-model2"):
        onnx_file = Path(tempfile.mkdtemp()) / f"{name}.onnx"
        export_onnx(load_model(ckpt / name), onnx_file)
        runs = {
            "torch": Predictor.from_pretrained(ckpt / name),
            "onnxruntime": Predictor.from_pretrained(onnx_file),
        }
        figures = []
        for backend, pred in runs.items():
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
        print(f"{name}: " + "; ".join(figures))


def bench_clients(ckpt: Path, clients: int, requests: int) -> None:
    import importlib.util
    import socket

    from gradio_client import Client, handle_file

    os.environ["FER_MODEL_REPO"] = f"{ckpt / 'custom-cnn'},{ckpt / 'cnn-model2'}"
    spec = importlib.util.spec_from_file_location("app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    path = Path(tempfile.mkdtemp()) / "photo.jpg"
    photo_640x480().save(path, quality=90)
    try:

        def user(_):
            client = Client(url, verbose=False)
            lat, errors = [], 0
            for _ in range(requests):
                t0 = time.perf_counter()
                try:
                    r = client.predict(handle_file(str(path)), "custom-cnn", api_name="/predict")
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
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--clients", type=int, default=0, help="also load-test the Space with N clients")
    p.add_argument("--requests", type=int, default=25, help="requests per client")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), CPU only"
    )
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoints(Path(tmp))
        bench_photo(ckpt, args.repeats)
        if args.clients:
            bench_clients(ckpt, args.clients, args.requests)


if __name__ == "__main__":
    main()
