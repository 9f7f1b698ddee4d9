"""A real browser (Debian's chromium via playwright) uploads a photo and waits for the chart.

Set FER_HUB_SCREENSHOTS=folder to keep the screenshots (README's docs/space.png and
docs/live.png come from here: FER_HUB_SCREENSHOTS=docs python -m pytest tests/test_browser.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the browser benchmark's fake camera and probe
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
    shot = Path(os.environ.get("FER_HUB_SCREENSHOTS") or tmp_path) / "space.png"
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


def test_each_upload_is_analysed_once_and_a_bad_file_is_explained_once_with_nothing_stale(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _, url = served
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"not an image at all" * 50)
    runs: list[str] = []
    with sync_playwright() as p:
        browser = launch(p, "--headless")
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("request", lambda r: "/queue/join" in r.url and runs.append(r.url))
            page.goto(url)
            upload = page.locator("input[type=file]").first
            note = page.locator("[role=tabpanel]:visible")
            for name, expected in (("astronaut.jpg", "1 face found"), ("two_faces.jpg", "2 faces found")):
                runs.clear()
                upload.set_input_files(str(ROOT / "space" / "examples" / name))
                expect(note.get_by_text(expected)).to_be_visible(timeout=60_000)
                page.wait_for_timeout(1500)  # a second analysis would have started by now
                assert len(runs) == 1, (name, runs)  # a photo replacing another: still one
            runs.clear()
            page.get_by_text("Examples").locator("xpath=..").locator("button, td, img").first.click()
            expect(note.get_by_text("1 face found")).to_be_visible(timeout=60_000)  # the astronaut
            page.wait_for_timeout(1500)
            assert len(runs) == 1, ("example", runs)
            runs.clear()
            upload.set_input_files(str(bad))
            message = page.get_by_text("Could not read holiday.jpg: not an image")
            expect(message).to_be_visible(timeout=60_000)
            page.wait_for_timeout(1500)
            assert len(runs) == 1 and message.count() == 1  # said once, where the result was
            # no red badge, no previous result under the message, no broken image in the input
            assert page.get_by_text("Error", exact=True).count() == 0
            assert page.locator("#photo-out img").count() == 0
            assert page.get_by_text("2 faces found").count() == 0
            assert page.locator("img[alt='']:not([src])").count() == 0
        finally:
            browser.close()


def test_live_webcam_tab_boxes_the_face_and_updates_many_times_a_second(served, tmp_path, report):
    """One viewer streams a fake camera for 10 s; the page's own output image is watched. Reports
    the median updates per second and the lag from capture to display (README, "Speed", quotes
    benchmarks/bench_live_browser.py, which measures the same way on a quiet machine)."""
    from bench_live_browser import measure

    _, url = served
    shot = Path(os.environ.get("FER_HUB_SCREENSHOTS") or tmp_path) / "live.png"
    (viewer,) = measure(url, tmp_path, viewers=1, seconds=10, settle=3, screenshot=shot)
    report(
        f"live tab, 1 viewer, fake 30 fps camera: {viewer['updates_per_s']:.1f} updates/s (median), "
        f"lag {viewer['lag_p50_ms']:.0f} ms median, {viewer['lag_p95_ms']:.0f} ms p95"
    )
    # A loaded CI machine gets fewer updates: the figure is reported, not a pass mark. What must
    # hold is that the view keeps moving and boxes the face in (nearly) every update.
    assert viewer["updates_per_s"] >= 2, viewer
    assert viewer["face"] >= 0.9, viewer
    assert viewer["lag_p50_ms"] < 2000, viewer
    # nothing flashes: the status line is never dimmed as "pending", no "0.3s" timers blink
    assert viewer["status_opacity_min"] > 0.99 and viewer["timers_max"] == 0, (
        viewer["status_opacity_min"],
        viewer["timers_max"],
    )
    assert shot.stat().st_size > 10_000
