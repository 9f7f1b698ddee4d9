"""The in-browser app's speed: headless Chromium with a fake 30 fps camera drives the page that
`fer-hub export-web` builds, served as `python -m http.server` serves it (no cross-origin
isolation, so onnxruntime-web runs one WASM thread).

    python benchmarks/bench_web.py [--seconds 15] [--models cnn-model2,custom-cnn]

Prints, per model: the first load (time until `ferHub.ready`, bytes fetched), the live view's
frames per second as `ferHub.stats()` reads it, and the milliseconds of a frame (detection,
classification, all of it). Stop any training first: it shares the cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_live_browser import write_camera_clip  # noqa: E402

from fer_hub.hardware import describe_cpu  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Isolated(Quiet):
    """Sends the headers that make a page cross-origin isolated (as a static Hub Space does with
    the card's custom_headers), so onnxruntime-web may run WASM threads."""

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


def serve(folder: Path, isolated: bool = False) -> tuple[ThreadingHTTPServer, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Isolated if isolated else Quiet
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}"


def measure(url: str, clip: Path, model: str, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--headless=new", "--disable-gpu", "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={clip}"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_context(permissions=["camera"]).new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}/index.html")
            page.evaluate(
                f"window.ferHub.ready.then(() => window.ferHub.analyze(new ImageData(64, 64), {{model: '{model}'}}))"
            )
            load_s = time.perf_counter() - t0
            fetched = page.evaluate(
                "performance.getEntriesByType('resource').reduce((s, e) => s + e.encodedBodySize, 0)"
                " + performance.getEntriesByType('navigation')[0].encodedBodySize"
            )
            page.evaluate(f"window.ferHub.startCamera({{model: '{model}'}})")
            time.sleep(3)  # warm-up: first runs allocate
            samples = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                time.sleep(1)
                samples.append(page.evaluate("window.ferHub.stats()"))
            page.evaluate("window.ferHub.stopCamera()")
        finally:
            browser.close()
    fps = sorted(s["fps"] for s in samples)
    last = samples[-1]
    return {
        "model": model,
        "load_s": load_s,
        "fetched_mb": fetched / 1e6,
        "fps_median": fps[len(fps) // 2],
        "frame_ms": last["lastMs"],
        "detect_ms": last["detectMs"],
        "classify_ms": last["classifyMs"],
        "backend": last["backend"],
        "threads": last["threads"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--models", default="cnn-model2,custom-cnn")
    ap.add_argument("--bundle", type=Path, help="an existing export (default: build one now)")
    ap.add_argument("--isolated", action="store_true", help="serve with COOP/COEP headers (WASM threads)")
    args = ap.parse_args()
    if CHROMIUM is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None:
            from fer_hub.web_export import export_web

            bundle = Path(tmp) / "web"
            sizes = export_web(bundle)
            print(f"bundle: {sum(sizes.values()) / 1e6:.1f} MB in {len(sizes)} files")
        clip = write_camera_clip(Path(tmp) / "camera.y4m")
        server, url = serve(bundle, args.isolated)
        print(
            f"{describe_cpu()}; headless Chromium, fake 640x480 camera at 30 fps, one face in view, "
            + ("cross-origin isolated (COOP/COEP headers)" if args.isolated else "a plain static server")
        )
        try:
            for model in args.models.split(","):
                r = measure(url, clip, model, args.seconds)
                print(
                    f"  {model:11s} first load {r['load_s']:.1f} s ({r['fetched_mb']:.1f} MB fetched) | live "
                    f"{r['fps_median']:.1f} frames/s, {r['frame_ms']:.0f} ms a frame (detection {r['detect_ms']:.0f}, "
                    f"classification {r['classify_ms']:.0f}) | {r['backend']}, {r['threads']} thread(s)"
                )
                print("  " + json.dumps(r))
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
