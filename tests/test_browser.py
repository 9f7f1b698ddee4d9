"""A real browser (Debian's chromium via playwright) uploads a photo and waits for the chart.

Set FER_HUB_SCREENSHOT=path to keep the screenshot (README's docs/space.png comes from here).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]


def test_upload_shows_boxed_faces_and_the_probability_chart(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _, url = served
    shot = Path(os.environ.get("FER_HUB_SCREENSHOT") or tmp_path / "space.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--headless",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
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
