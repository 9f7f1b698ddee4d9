"""A real browser (Debian's chromium via playwright) uploads a photo and waits for the chart.

Set FER_HUB_SCREENSHOT=path to keep the screenshot (README's docs/space.png comes from here).
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]


def launch(p, *args: str):
    """Debian's chromium, quiet on a closed network (no background fetches), plus `args`."""
    quiet = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    return p.chromium.launch(executable_path=CHROMIUM, args=[*quiet, *args])


def test_upload_shows_boxed_faces_and_the_probability_chart(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _, url = served
    shot = Path(os.environ.get("FER_HUB_SCREENSHOT") or tmp_path / "space.png")
    with sync_playwright() as p:
        browser = launch(p, "--headless")
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url)
            page.locator("input[type=file]").first.set_input_files(
                str(ROOT / "space" / "examples" / "two_faces.jpg")
            )
            # The chart (gr.Label) lists all seven expressions once a result arrives.
            chart = page.get_by_test_id("label")  # gradio's data-testid on gr.Label
            for name in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):
                expect(chart.first).to_contain_text(name, timeout=60_000)
            expect(page.get_by_text("2 faces found")).to_be_visible(timeout=60_000)
            page.wait_for_timeout(500)  # let images finish painting for the screenshot
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def write_y4m(path: Path, frames: int = 60) -> Path:
    """A fake-camera clip (raw Y4M, 4:2:0): the astronaut drifting across a gray 640x480 frame."""
    import numpy as np
    from PIL import Image

    face = Image.open(ROOT / "space" / "examples" / "astronaut.jpg").convert("RGB").resize((360, 360))
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F15:1 Ip A1:1 C420jpeg\n")
        for i in range(frames):
            frame = Image.new("RGB", (640, 480), (90, 90, 90))
            frame.paste(face, (100 + (i % 30) * 3, 60))
            y, u, v = (np.asarray(c, dtype=np.float32) for c in frame.convert("YCbCr").split())
            f.write(b"FRAME\n" + y.astype(np.uint8).tobytes())
            for c in (u, v):  # chroma at half resolution, averaged over 2x2 blocks
                f.write(c.reshape(240, 2, 320, 2).mean(axis=(1, 3)).round().astype(np.uint8).tobytes())
    return path


def start_streaming(page, url: str):
    """Open the Space, grant the fake camera, wait until it plays, press Record; the tab's panel.

    Record pressed before the <video> has a frame sends nothing, so wait for one first."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Live webcam").click()
    panel = page.locator("[role=tabpanel]:visible")
    panel.get_by_text("Click to Access Webcam").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].some(v => v.videoWidth > 0 && v.currentTime > 0)",
        timeout=30_000,
    )
    panel.locator("button[aria-label='capture photo']").click()
    return panel


def test_live_webcam_tab_boxes_the_face_and_keeps_updating(served, tmp_path):
    from playwright.sync_api import Error, expect, sync_playwright

    _, url = served
    clip = write_y4m(tmp_path / "cam.y4m")
    log: list[str] = []
    with sync_playwright() as p:
        browser = launch(
            p,
            "--headless=new",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}",
        )
        try:
            context = browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 1200})
            # A loaded CI machine once left the stream unstarted (the button still read Record after
            # 60 s, no error anywhere); a fresh page is a fresh camera and stream, so try up to 3.
            for attempt in range(1, 4):
                page = context.new_page()
                page.on("console", lambda m: m.type == "error" and log.append(f"console error: {m.text}"))
                page.on("pageerror", lambda e: log.append(f"page error: {e}"))
                try:
                    panel = start_streaming(page, url)
                    # The status line names the (smoothed) expression of the face it boxes.
                    expect(panel.get_by_text("smoothed over the last frames")).to_be_visible(timeout=30_000)
                    break
                except (AssertionError, Error) as e:
                    why = str(e).splitlines()[0]
                    log.append(f"attempt {attempt}: {why}")
                    warnings.warn(f"live tab, attempt {attempt} failed: {why}", stacklevel=1)
                    page.close()
            else:
                pytest.fail("the live tab never showed a result:\n" + "\n".join(log))
            out = panel.locator("img").last
            sources = set()
            for _ in range(20):  # the output frame keeps changing while the camera streams
                sources.add(out.get_attribute("src"))
                page.wait_for_timeout(250)
            assert len(sources) >= 3, "\n".join(log)
        finally:
            browser.close()
