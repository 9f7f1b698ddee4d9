"""The live webcam tab as a person sees it: updates per second and lag, in a real browser.

    python benchmarks/bench_live_browser.py                  # 1 and LIVE_VIEWERS viewers, 20 s each
    python benchmarks/bench_live_browser.py --stream-every 0.15 0.05 0.02 --seconds 10

Starts the Space (space/app.py, shipped checkpoints) on a free port and drives it with Debian's
chromium through playwright, its camera replaced by Chromium's fake capture device playing a
clip this script writes: the astronaut drifting across a 640x480 frame at 30 frames/s, each
frame carrying its number in horizontal bands at the bottom (mirror-proof: gradio mirrors the
webcam). In the page, every time the output image changes the script decodes the number of the
camera frame it shows and the number of the frame the camera shows at that moment: their
difference is the lag from capture to display (to within one camera frame, 33 ms).

Per viewer it prints the median updates per second (over 1 s windows), the median and 95th
percentile lag, and the share of updates with a face boxed (`measure` also returns the lowest
opacity the status line showed and the most progress timers seen over the outputs). The browser shares the machine's
cores with the server, as it would not on a real Space: viewers beyond one are a lower bound.
Stop any training run first: it shares the cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT, FPS, FRAMES = 640, 480, 30, 150
BITS, BAND = 8, 10  # the frame number: 8 bands of 10 rows, most significant first, above a margin
BANDS_TOP = HEIGHT - 20 - BITS * BAND


def write_camera_clip(path: Path, frames: int = FRAMES, shade: int = 90) -> Path:
    """A fake-camera clip (raw Y4M, 4:2:0, 30 frames/s): the astronaut's head drifting across a
    `shade` gray frame, the frame's number in black/white bands across the whole width."""
    face = Image.open(ROOT / "space" / "examples" / "astronaut.jpg").convert("RGB").resize((300, 300))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            frame = Image.new("RGB", (WIDTH, HEIGHT), (shade, shade, shade))
            frame.paste(face, (120 + abs(i % 60 - 30) * 3, 30))
            y, u, v = (np.asarray(c, dtype=np.float32) for c in frame.convert("YCbCr").split())
            for bit in range(BITS):
                on = (i >> (BITS - 1 - bit)) & 1
                y[BANDS_TOP + bit * BAND : BANDS_TOP + (bit + 1) * BAND] = 235 if on else 16
                u[BANDS_TOP + bit * BAND : BANDS_TOP + (bit + 1) * BAND] = 128
                v[BANDS_TOP + bit * BAND : BANDS_TOP + (bit + 1) * BAND] = 128
            f.write(b"FRAME\n" + y.astype(np.uint8).tobytes())
            for c in (u, v):  # chroma at half resolution, averaged over 2x2 blocks
                half = c.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))
                f.write(half.round().astype(np.uint8).tobytes())
    return path


# Runs in the page: watches the live tab's output image for `seconds` and returns, per update,
# its time, the camera frame it shows, the camera's frame at that moment, and the status line.
MEASURE_JS = r"""
async ([seconds, bits, band, top, width, height, nframes, fps]) => {
  const out = document.querySelector('#live-out');
  const video = [...document.querySelectorAll('video')].find(v => v.videoWidth > 0);
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const decode = (source) => {
    ctx.drawImage(source, 0, 0, width, height);
    let n = 0;
    for (let b = 0; b < bits; b++) {
      const row = ctx.getImageData(width * 0.15, top + b * band + band / 2, width * 0.7, 1).data;
      let sum = 0;
      for (let i = 0; i < row.length; i += 4) sum += row[i];
      n = n * 2 + (sum / (row.length / 4) > 128 ? 1 : 0);
    }
    return n;
  };
  const updates = [];
  let last = null;
  const t0 = performance.now();
  return await new Promise((resolve) => {
    const check = async () => {
      const img = out && out.querySelector('img');
      if (img && img.src && img.src !== last) {
        last = img.src;
        try { await img.decode(); } catch (e) {}
        const shown = decode(img), camera = decode(video);
        const status = document.querySelector('#live-status');
        // what a person sees of the status line (gradio dims a pending output) and any
        // progress timer ("0.3s") shown over the live tab's outputs
        const seen = (el) => {  // the opacity a person sees: 0 when hidden anywhere up the tree
          let o = 1;
          for (let e = el; e; e = e.parentElement) {
            const st = getComputedStyle(e);
            if (st.visibility === 'hidden' || st.display === 'none') return 0;
            o *= parseFloat(st.opacity);
          }
          return o;
        };
        const opacity = status ? seen(status) : 0;
        const panel = out.closest('[role=tabpanel]') || document.body;
        const timers = [...panel.querySelectorAll('*')].filter(e => e.children.length === 0
          && /^\d+(\.\d+)?s$/.test((e.textContent || '').trim()) && seen(e) > 0.05).length;
        updates.push({t: performance.now() - t0, shown, camera,
                      lag_ms: ((camera - shown + nframes) % nframes) * 1000 / fps,
                      face: !!status && !status.innerText.startsWith('No face'),
                      status_opacity: opacity, timers});
      }
      if (performance.now() - t0 < seconds * 1000) requestAnimationFrame(check);
      else resolve(updates);
    };
    requestAnimationFrame(check);
  });
}
"""


def start_streaming(page, url: str):
    """Open the Space, grant the fake camera, wait until it plays, press Record."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Live webcam").click()
    panel = page.locator("[role=tabpanel]:visible")
    panel.get_by_text("Click to Access Webcam").click()
    # Record pressed before the <video> has a frame sends nothing.
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].some(v => v.videoWidth > 0 && v.currentTime > 0)",
        timeout=30_000,
    )
    panel.locator("button[aria-label='capture photo']").click()
    page.wait_for_function("() => !!document.querySelector('#live-out img')", timeout=60_000)
    return panel


def start_with_retries(context, url: str, attempts: int = 3):
    """A page of `context` streaming to the Space. A loaded machine once left a stream unstarted
    (Record pressed, no error anywhere); a fresh page is a fresh camera and stream."""
    from playwright.sync_api import Error

    for attempt in range(1, attempts + 1):
        page = context.new_page()
        try:
            start_streaming(page, url)
            return page
        except Error as e:
            print(f"(viewer start, attempt {attempt}: {str(e).splitlines()[0]})", file=sys.stderr)
            page.close()
    raise RuntimeError(f"the live tab never showed a result in {attempts} attempts")


def summarize(updates: list[dict], seconds: float) -> dict:
    """Median updates/s over 1 s windows, lag percentiles, share with a face."""
    if not updates:
        return {"updates_per_s": 0.0, "lag_p50_ms": float("nan"), "lag_p95_ms": float("nan"), "face": 0.0,
                "status_opacity_min": float("nan"), "timers_max": 0}  # fmt: skip
    per_second = np.bincount([int(u["t"] // 1000) for u in updates], minlength=int(seconds))[: int(seconds)]
    lags = np.array([u["lag_ms"] for u in updates])
    return {
        "updates_per_s": float(np.median(per_second)),
        "lag_p50_ms": float(np.median(lags)),
        "lag_p95_ms": float(np.percentile(lags, 95)),
        "face": float(np.mean([u["face"] for u in updates])),
        "status_opacity_min": float(min(u["status_opacity"] for u in updates)),
        "timers_max": int(max(u["timers"] for u in updates)),
    }


def measure(
    url: str,
    clip_dir: Path,
    viewers: int = 1,
    seconds: float = 10.0,
    settle: float = 2.0,
    screenshot: Path | None = None,
) -> list[dict]:
    """`viewers` people streaming their cameras to the Space at `url`, each in their own browser
    with their own fake camera (a clip written into `clip_dir`; people do not send identical
    frames); after `settle` seconds, all watched over the same `seconds`. One `summarize` dict
    per viewer; `screenshot`: where to save the first viewer's page at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browsers = []
        try:
            pages = []
            for i in range(viewers):
                clip = clip_dir / f"camera{i}.y4m"
                if not clip.exists():
                    write_camera_clip(clip, shade=90 + 12 * i)
                browsers.append(
                    p.chromium.launch(
                        executable_path=CHROMIUM,
                        args=[
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--no-first-run",
                            "--headless=new",
                            "--use-fake-device-for-media-stream",
                            "--use-fake-ui-for-media-stream",
                            f"--use-file-for-fake-video-capture={clip}",
                        ],  # fmt: skip
                    )
                )
                context = browsers[-1].new_context(
                    permissions=["camera"], viewport={"width": 1280, "height": 1200}
                )
                pages.append(start_with_retries(context, url))
            pages[0].wait_for_timeout(settle * 1000)
            args = [seconds, BITS, BAND, BANDS_TOP, WIDTH, HEIGHT, FRAMES, FPS]
            for page in pages:  # started in every page before any is awaited: one window for all
                page.evaluate(f"(args) => {{ window.__ferMeasure = ({MEASURE_JS})(args); }}", args)
            results = [summarize(page.evaluate("() => window.__ferMeasure"), seconds) for page in pages]
            if screenshot:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                pages[0].screenshot(path=str(screenshot), full_page=True)
            return results
        finally:
            for browser in browsers:
                browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(stream_every: float | None = None):
    """The Space on the shipped checkpoints, launched on a free port: (app module, url).
    `stream_every` overrides the live tab's setting (views.LIVE_STREAM_EVERY) for this launch."""
    import importlib.util

    from fer_hub.models import SHIPPED_MODELS

    os.environ["FER_MODEL_REPO"] = ",".join(str(ROOT / "space" / "checkpoints" / n) for n in SHIPPED_MODELS)
    sys.path.insert(0, str(ROOT / "space"))
    import views

    if stream_every is not None:
        views.LIVE_STREAM_EVERY = stream_every
    spec = importlib.util.spec_from_file_location("app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **app.LAUNCH)
    return app, url


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fer_hub.hardware import describe_cpu

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stream-every", type=float, nargs="*", default=[None],
                   help="live tab settings to compare (default: the Space's own)")  # fmt: skip
    p.add_argument(
        "--viewers", type=int, nargs="*", default=None, help="default: 1 and the Space's LIVE_VIEWERS"
    )
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    if CHROMIUM is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium) and the playwright package")
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{describe_cpu()}; headless chromium with a 640x480 {FPS} fps fake "
            f"camera, server and browser on this machine; {args.seconds:.0f} s per measurement"
        )
        print(f"{'stream_every':>12s} {'viewers':>7s} {'updates/s p50 (each viewer)':>28s} "
              f"{'lag p50 ms':>10s} {'lag p95 ms':>10s} {'face':>5s}")  # fmt: skip
        for every in args.stream_every:
            app, url = serve(every)
            try:
                for n in args.viewers or sorted({1, app.LIVE_VIEWERS}):
                    rows = measure(url, Path(tmp), n, args.seconds)
                    rates = " ".join(f"{r['updates_per_s']:.1f}" for r in rows)
                    print(
                        f"{sys.modules['views'].LIVE_STREAM_EVERY:12g} {n:7d} "
                        f"{rates:>28s} {np.median([r['lag_p50_ms'] for r in rows]):10.0f} "
                        f"{np.median([r['lag_p95_ms'] for r in rows]):10.0f} "
                        f"{np.mean([r['face'] for r in rows]):5.2f}",
                        flush=True,
                    )
            finally:
                app.demo.close()


if __name__ == "__main__":
    main()
