"""The Space under load: concurrent clients on /predict and /video, and what the server holds.

    python benchmarks/bench_load.py [--predict-clients 8 --predict-requests 25 --video-clients 4]

Starts `space/app.py` in its own process (the shipped checkpoints, its real budgets) and prints
one row per scenario: requests, errors (answers that are not what the scenario expects), p50/p95
latency, throughput, and the server's resident memory before the scenario and at its peak
(Linux's VmHWM, reset through /proc/PID/clear_refs; sampled VmRSS where that is not allowed).

Scenarios: a 640x480 one-face photo on /predict; the largest photo the Space accepts; the worst video the Space accepts (4K UHD, longer
than the frame cap, all clients at once); a raw H.264 stream that states no frame count; and a
16-frame 8192 x 8192 clip (refused before decoding). Stop any training run first: it shares the cores.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "space"))  # views.py: the Space's budgets

from fer_hub.hardware import describe_cpu  # noqa: E402


def write_clip(path: Path, size: tuple[int, int], frames: int, container: str | None = None) -> Path:
    """The astronaut's head drifting across a gray frame; x264 `ultrafast`, so a 4K clip is quick
    to make (decoding it costs the same as any 4K H.264)."""
    import av
    from bench_video import head_patch

    w, h = size
    side = min(h // 2, 1000)
    patch = np.asarray(Image.fromarray(head_patch()).resize((side, side)))
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            frame = np.full((h, w, 3), 90, np.uint8)
            x = (i * 8) % (w - side)
            frame[h // 4 : h // 4 + side, x : x + side] = patch
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class Memory:
    """Resident memory of process `pid`: now, and the peak since `reset()`."""

    def __init__(self, pid: int) -> None:
        self.pid, self._sampled, self._stop = pid, 0, threading.Event()
        self._exact = os.access(f"/proc/{pid}/clear_refs", os.W_OK)

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        return 0

    def now(self) -> int:
        return self._status("VmRSS:")

    def reset(self) -> None:
        if self._exact:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self._sampled = self.now()
        self._stop.clear()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._sampled = max(self._sampled, self.now())

    def peak(self) -> int:
        self._stop.set()
        return self._status("VmHWM:") if self._exact else self._sampled


def start_server(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("FER_MODEL_REPO", None)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "space" / "app.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit("the Space did not start: run `python space/app.py` to see why") from None
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the Space did not answer within 180 s")


def run(url: str, memory: Memory, name: str, calls: list, expect) -> str:
    """Send `calls[i]` (a list of (api_name, args)) from client i, all clients at once; `expect(
    result, exception)` says whether an answer is the right one. Returns the table row."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in calls]
    before = memory.now()
    memory.reset()

    def user(i):
        lat, errors = [], 0
        for api_name, args in calls[i]:
            t0 = time.perf_counter()
            try:
                errors += not expect(clients[i].predict(*args, api_name=api_name), None)
            except Exception as e:  # noqa: BLE001 - a refusal is an exception in gradio_client
                errors += not expect(None, e)
            lat.append(time.perf_counter() - t0)
        return lat, errors

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(user, range(len(calls))))
    wall = time.perf_counter() - t0
    peak = memory.peak()
    lat = sorted(x for r, _ in results for x in r)
    errors = sum(e for _, e in results)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
    return (
        f"| {name} | {len(calls)} x {len(calls[0])} | {errors} | {statistics.median(lat):.2f} | "
        f"{p95:.2f} | {len(lat) / wall:.2f} | {before / 2**20:,.0f} -> {peak / 2**20:,.0f} "
        f"(+{(peak - before) / 2**20:,.0f}) |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--predict-clients", type=int, default=8)
    p.add_argument("--predict-requests", type=int, default=25, help="per client")
    p.add_argument("--video-clients", type=int, default=4)
    args = p.parse_args()

    from gradio_client import handle_file
    from views import CONCURRENCY, MAX_ANALYSED_FRAMES, MAX_VIDEO_PIXELS, MAX_VIDEO_SECONDS

    tmp = Path(tempfile.mkdtemp(prefix="bench_load_"))
    photo = tmp / "photo.jpg"
    from bench_predict import photo_640x480

    photo_640x480().save(photo, quality=90)
    big = tmp / "big.jpg"  # 49 MP, just under the Space's 50 MP limit
    noise = np.random.default_rng(0).integers(0, 255, (750, 1020, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((8160, 6000)).save(big, quality=90)
    print("making clips ...", file=sys.stderr)
    uhd = write_clip(tmp / "uhd.mp4", (3840, 2160), MAX_ANALYSED_FRAMES + 20)
    raw = write_clip(tmp / "stream.mp4", (640, 480), 3000, container="h264")
    huge = write_clip(tmp / "huge.mp4", (8192, 8192), 16)
    assert 3840 * 2160 <= MAX_VIDEO_PIXELS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    memory = Memory(server.pid)
    try:
        from gradio_client import Client

        Client(url, verbose=False).predict(handle_file(str(photo)), "cnn-model2", api_name="/predict")  # warm
        face = lambda r, e: e is None and r["face_found"]  # noqa: E731
        analysed = lambda r, e: e is None and Path(r[2]).stat().st_size > 0  # noqa: E731
        refused = lambda r, e: e is not None and "over the limit" in str(e)  # noqa: E731
        predict = [("/predict", (handle_file(str(photo)), "cnn-model2"))] * args.predict_requests
        rows = [
            run(url, memory, "/predict, 640x480 photo", [predict] * args.predict_clients, face),
            run(
                url,
                memory,
                "/predict, 8160x6000 photo (49 MP)",
                [[("/predict", (handle_file(str(big)), "cnn-model2"))] * 2] * args.video_clients,
                lambda r, e: e is None,
            ),
            run(
                url,
                memory,
                f"/video, 4K UHD, {MAX_ANALYSED_FRAMES + 20} frames",
                [[("/video", (handle_file(str(uhd)), "cnn-model2"))]] * args.video_clients,
                analysed,
            ),
            run(
                url,
                memory,
                "/video, raw H.264, 3,000 frames",
                [[("/video", (handle_file(str(raw)), "cnn-model2"))]] * args.video_clients,
                analysed,
            ),
            run(
                url,
                memory,
                "/video, 8192 x 8192, 16 frames",
                [[("/video", (handle_file(str(huge)), "cnn-model2"))]] * args.video_clients,
                refused,
            ),
        ]
    finally:
        server.terminate()
        server.wait(30)

    print(
        f"\nThe Space under load ({describe_cpu()}; concurrency {CONCURRENCY}, "
        f"frame cap {MAX_ANALYSED_FRAMES}, {MAX_VIDEO_SECONDS:.0f} s a clip):\n"
    )
    print(
        "| scenario | clients x requests | errors | p50 s | p95 s | requests/s | server MiB before -> peak |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
