"""What the Space serves, without any UI: its budgets, its predictors, and results shaped for
display (chart, table, summary, the video tab's report).

Kept out of `app.py` so the app stays a thin gradio layout and all of this is tested without
starting a server; it lives beside the app, not in `fer_hub`, because only the Space uses it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from fer_hub.errors import InputError, NotFoundError
from fer_hub.labels import EMOTIONS
from fer_hub.models import SHIPPED_MODELS
from fer_hub.predict import Predictor
from fer_hub.results import write_rows
from fer_hub.tracking import FaceTracker

__all__ = [
    "FACE_COLUMNS",
    "NO_FACE_HINT",
    "load_predictors",
    "chart_data",
    "photo_chart",
    "face_rows",
    "summary",
    "legend",
    "live_status",
    "live_chart",
    "LiveSession",
    "video_stride",
    "video_summary",
    "MAX_UPLOAD_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_VIDEO_PIXELS",
    "MAX_ANALYSED_FRAMES",
    "MAX_VIDEO_SECONDS",
    "CONCURRENCY",
    "QUEUE_SIZE",
    "KEEP_FILES_S",
    "LIVE_STREAM_EVERY",
    "LIVE_MAX_SIDE",
    "video_report",
]

# What one request to the public Space may cost (README, "What one request may cost", says how
# each was chosen; benchmarks/bench_load.py measures the server under them).
# Uploads: a phone's 48 MP photo is ~15 MB and a minute of 1080p video ~100 MB.
MAX_UPLOAD_BYTES = 100 * 2**20
# Decoded photos: a 50 MP RGB image is 150 MB in memory; 48 MP phone photos still pass.
MAX_IMAGE_PIXELS = 50_000_000
# Video frames: 4K UHD. An H.264 decoder holds its reference frames at full size (~130 MB for a 4K
# clip, ~900 MB for an 8192 x 8192 one), before fer_hub sees a pixel, so larger clips are refused.
MAX_VIDEO_PIXELS = 3840 * 2160
# The video tab analyses at most this many frames per request, counted as they are decoded: a
# few seconds of work for a 640x480 clip (benchmarks/bench_video.py; README, "Speed").
MAX_ANALYSED_FRAMES = 300
# ... and stops after this much wall-clock time, whatever the clip (several requests share 2 cores).
MAX_VIDEO_SECONDS = 30.0
# Requests analysed at once, and how many may wait; past that a visitor is told the Space is busy.
CONCURRENCY = 4
QUEUE_SIZE = 16
# Seconds between the webcam frames the live tab sends (gradio's stream_every), chosen with
# benchmarks/bench_live_browser.py (README, "Speed").
LIVE_STREAM_EVERY = 0.05
# Longer side of the picture the live tab sends back: the page shows it about this size, and a
# smaller picture is less for the server to encode and the browser to fetch and decode.
LIVE_MAX_SIDE = 480
# Uploads and results are deleted this long after they were made (checked every KEEP_FILES_S / 6).
KEEP_FILES_S = 1800

# The static in-browser app this Space links to: written into the bundle by
# `space/deploy.py --static-url URL`, or set as the Space variable FER_STATIC_APP_URL.
LINKS_FILE = Path(__file__).resolve().parent / "links.json"


def load_predictors(
    checkpoints_dir: str | os.PathLike, repo_ids: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> dict[str, Predictor]:
    """One Predictor per model, keyed by architecture name, the default first.

    `repo_ids` (default: $FER_MODEL_REPO) is a comma-separated list of Hub repo ids or folders;
    each is registered under the architecture its config.json names, and the first given is the
    default. Otherwise the models load from `checkpoints_dir/<name>` (the Space's checkpoints/
    folder) in SHIPPED_MODELS order: a missing one is a warning, no model at all an error, each
    naming the path and the command that creates it. Each refuses photos larger than
    `max_pixels` before decoding them.
    """
    predictors = _load_predictors(checkpoints_dir, repo_ids)
    for predictor in predictors.values():
        predictor.max_pixels = max_pixels
    return predictors


def _load_predictors(checkpoints_dir: str | os.PathLike, repo_ids: str | None) -> dict[str, Predictor]:
    repo_ids = repo_ids if repo_ids is not None else os.environ.get("FER_MODEL_REPO", "")
    sources = [s.strip() for s in repo_ids.split(",") if s.strip()]
    predictors: dict[str, Predictor] = {}
    if sources:
        origin: dict[str, str] = {}
        for source in sources:
            predictor = Predictor.from_pretrained(source)
            if predictor.name in predictors:  # the menu has one entry per architecture
                raise InputError(
                    f"FER_MODEL_REPO names two {predictor.name} models ({origin[predictor.name]} and "
                    f"{source}); the Space serves one model per architecture"
                )
            predictors[predictor.name], origin[predictor.name] = predictor, source
        return predictors
    root = Path(checkpoints_dir)
    present = [name for name in SHIPPED_MODELS if (root / name / "model.safetensors").is_file()]
    missing = [name for name in SHIPPED_MODELS if name not in present]
    commands = "\n".join(
        f"  python train_hub.py --model {name} --recipe strong --output {root / name}" for name in missing
    )
    if not present:
        raise NotFoundError(
            f"no model checkpoint in {root} (expected {' and '.join(SHIPPED_MODELS)} folders)\n"
            f"Create them with:\n{commands}\n"
            f"or set FER_MODEL_REPO to Hub repo ids (comma-separated)."
        )
    if missing:  # serve what there is: one model is a working Space, none is not
        warnings.warn(
            f"serving {', '.join(present)} only: no checkpoint at "
            f"{', '.join(str(root / n) for n in missing)}. Create with:\n{commands}",
            stacklevel=2,
        )
    detector = None
    for name in present:
        predictor = Predictor.from_pretrained(root / name, detector=detector)
        detector = predictor.detector  # one detector serves both models
        if predictor.name != name:
            raise InputError(f"{root / name} holds a {predictor.name!r} model, expected {name!r}")
        predictors[name] = predictor
    return predictors


def chart_data(result: dict) -> dict[str, float]:
    """All seven probabilities of the largest face, in EMOTIONS order (for a bar chart); empty
    when no face was found: a chart for a whole image that holds no face would be a confident
    answer to a question nobody asked."""
    if not result["faces"]:
        return {}
    probs = result["faces"][0]["probabilities"]
    return {e: float(probs[e]) for e in EMOTIONS}


def photo_chart(result: dict) -> dict:
    """The Photo tab's chart (components.ExpressionChart) for the largest face: its seven
    probabilities under a headline that names the expression, and says "uncertain" when the
    model is; {} when no face was found."""
    if not result["faces"]:
        return {}
    top = result["faces"][0]
    return {
        "headline": top["label"] + (" (uncertain)" if top.get("uncertain") else ""),
        "confidences": chart_data(result),
    }


def face_rows(result: dict) -> list[list]:
    """One table row per face: index, box, label, its probability, uncertain, and all seven."""
    return [
        [
            i + 1,
            *f["box"],
            f["label"],
            round(f["probabilities"][f["label"]], 3),
            "yes" if f.get("uncertain") else "no",
            *(round(f["probabilities"][e], 3) for e in EMOTIONS),
        ]
        for i, f in enumerate(result["faces"])
    ]


FACE_COLUMNS = ["face", "x", "y", "w", "h", "label", "score", "uncertain", *EMOTIONS]

NO_FACE_HINT = (
    "No face found, so there is nothing to score. Try a photo where the face is frontal, "
    "well lit, not covered, and at least about a tenth of the picture's height."
)


def summary(result: dict) -> str:
    """What a person reads first: how many faces, the largest one's expression, and what the
    box colours mean."""
    if not result["faces"]:
        return NO_FACE_HINT
    faces = result["faces"]
    top = faces[0]
    n_uncertain = sum(bool(f.get("uncertain")) for f in faces)
    n_unfamiliar = sum(bool(f.get("unfamiliar")) for f in faces)
    text = (
        f"{len(faces)} face{'s' if len(faces) > 1 else ''} found ({result['model']}); largest: "
        f"**{top['label']}** {top['probabilities'][top['label']]:.0%}"
        + (" (uncertain)" if top.get("uncertain") else "")
        + "."
    )
    if n_uncertain:
        text += (
            f" {n_uncertain} of {len(faces)} uncertain: the model's calibrated confidence is below the "
            "level at which its answers were 80% right on validation faces"
            + (
                f", or the face is blurrier or noisier than the faces it learnt from "
                f"({n_unfamiliar} of {len(faces)}: move closer, hold still, add light)"
                if n_unfamiliar
                else ""
            )
            + "."
        )
    return text + "\n\n" + legend(result)


def legend(result: dict) -> str:
    """Markdown/HTML key to the box colours in `draw.annotate` for the labels in `result`."""
    from fer_hub.draw import COLORS, UNCERTAIN_COLOR

    def swatch(rgb) -> str:
        return f'<span style="color: rgb{tuple(rgb)}">&#9632;</span>'

    labels = sorted({f["label"] for f in result["faces"] if not f.get("uncertain")}, key=EMOTIONS.index)
    keys = [f"{swatch(COLORS[lab])} {lab}" for lab in labels]
    if any(f.get("uncertain") for f in result["faces"]):
        keys.append(f"{swatch(UNCERTAIN_COLOR)} uncertain")
    return "Box colour = predicted expression: " + " &nbsp; ".join(keys)


def video_stride(n_frames: int, max_analysed: int = MAX_ANALYSED_FRAMES) -> int:
    """Smallest N such that analysing every N-th frame stays within `max_analysed` frames."""
    return max(1, -(-n_frames // max_analysed))


def video_report(
    video_file: str | os.PathLike,
    predictor: Predictor,
    out_dir: str | os.PathLike,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, str, Path]:
    """The video tab's answer, within the Space's budgets: a timeline plot and a CSV written into
    `out_dir` (the request's own, private folder), and a Markdown summary.

    Raises `VideoError` (with a `reason` fit to show) for a clip that cannot or may not be read."""
    from fer_hub.plots import plot_tracks
    from fer_hub.video import VIDEO_COLUMNS, analyze_video, probe, track_summary

    name = Path(video_file).name
    info = probe(video_file, max_pixels=MAX_VIDEO_PIXELS)
    every = video_stride(info.frames)
    rows = analyze_video(
        video_file,
        predictor,
        every=every,
        progress=False,
        on_progress=on_progress,
        max_frames=MAX_ANALYSED_FRAMES,
        max_seconds=MAX_VIDEO_SECONDS,
        max_pixels=MAX_VIDEO_PIXELS,
    )
    out_dir, stem = Path(out_dir), Path(name).stem
    plot = plot_tracks(rows, out_dir / f"{stem}_timeline.png", title=f"{name} ({predictor.name})")
    csv_file = out_dir / f"{stem}_faces.csv"
    write_rows(rows, VIDEO_COLUMNS, csv_file)
    summary = video_summary(track_summary(rows), every, info.fps)
    if rows.stopped:
        last = max((r["time_s"] for r in rows), default=0.0)
        why = (
            f"the Space analyses at most {MAX_ANALYSED_FRAMES} frames a request"
            if rows.stopped == "frames"
            else f"the Space spends at most {MAX_VIDEO_SECONDS:.0f} s on a request"
        )
        summary = (
            f"**Stopped early** after {rows.decoded} frames (faces up to {last:.1f} s): {why}. "
            "`fer-hub video` analyses whole clips on your own computer.\n\n" + summary
        )
    return plot, summary, csv_file


def video_summary(tracks: list[dict], every: int, fps: float) -> str:
    """Markdown: the stride used, and per face the share of time spent in each expression."""
    head = (
        ("Analysed every frame" if every == 1 else f"Analysed one frame in {every}")
        + f" ({fps / every:.1f} per second of video)"
        + (f" to keep the request within about {MAX_ANALYSED_FRAMES} analysed frames." if every > 1 else ".")
    )
    if not tracks:
        return head + "\n\n" + NO_FACE_HINT.replace("nothing to score", "no timeline to draw")
    rows = [
        f"| {t['track']} | {t['from_s']:.1f}-{t['to_s']:.1f} s | "
        + " | ".join(f"{t[f'share_{e}']:.0%}" for e in EMOTIONS)
        + " |"
        for t in tracks
    ]
    return "\n".join(
        [
            head,
            "",
            "Share of analysed frames per expression, per face:",
            "",
            "| face | seen | " + " | ".join(EMOTIONS) + " |",
            "|---|---|" + "---|" * len(EMOTIONS),
            *rows,
        ]
    )


def live_status(result: dict) -> str:
    """One line under the live view: what is in front of the camera right now."""
    if not result["faces"]:
        return "No face in view: face the camera, in good light, close enough to fill a tenth of the picture."
    faces = result["faces"]
    top = faces[0]
    more = f" (+{len(faces) - 1} more)" if len(faces) > 1 else ""
    unsure = ", uncertain" if top.get("uncertain") else ""
    return f"**{top['label']}** {top['probabilities'][top['label']]:.0%}{unsure}, smoothed over the last frames{more}"


@dataclass
class LiveSession:
    """One viewer's live stream: their face tracker, and what their page already shows (a
    frame whose chart or status line would not change sends nothing for it: each update the
    browser renders costs it time it needs for the next frame)."""

    tracker: FaceTracker = field(default_factory=FaceTracker)
    chart: str | None = None
    status: str | None = None
    # digest of the last frame sent back: gradio rewrites an identical image's cache file in
    # place, under the same name, while the browser may still be reading it (a still camera)
    frame: bytes | None = None


def live_chart(probs: dict[str, float], uncertain: bool = False) -> str:
    """The live tab's bar chart as HTML: all seven expressions in EMOTIONS order (bars never
    swap places), whole percents (so a steady face sends the same chart again, which is then
    skipped), gray bars for an uncertain face, empty bars when no face is in view."""
    from fer_hub.draw import COLORS, UNCERTAIN_COLOR

    rows = []
    for e in EMOTIONS:
        pct = round(100 * probs.get(e, 0.0))
        rgb = UNCERTAIN_COLOR if uncertain else COLORS[e]
        rows.append(
            f'<div class="fer-bar" data-expression="{escape(e)}" data-percent="{pct}">'
            f'<span class="fer-bar-name">{escape(e)}</span>'
            f'<span class="fer-bar-track"><span class="fer-bar-fill" style="width:{pct}%;'
            f'background:rgb{tuple(rgb)}"></span></span>'
            f'<span class="fer-bar-value">{pct}%</span></div>'
        )
    return '<div class="fer-bars">' + "".join(rows) + "</div>"


# Styles of live_chart's HTML (gradio scopes them to the chart's component).
LIVE_CHART_CSS = """
.fer-bars { display: grid; gap: 4px; max-width: 520px; }
.fer-bar { display: grid; grid-template-columns: 5.5em 1fr 3em; align-items: center; gap: 8px; }
.fer-bar-track { height: 14px; background: var(--block-background-fill, #eee); border-radius: 3px; overflow: hidden; }
.fer-bar-fill { display: block; height: 100%; transition: width 120ms linear; }
.fer-bar-value { text-align: right; font-variant-numeric: tabular-nums; }
"""


def static_app_url() -> str | None:
    """Where the static in-browser app lives, when this Space knows (see LINKS_FILE)."""
    if url := os.environ.get("FER_STATIC_APP_URL"):
        return url
    if LINKS_FILE.is_file():
        return json.loads(LINKS_FILE.read_text()).get("static_app")
    return None


def intro_markdown() -> str:
    """The page's header: what it does, what it is not for, and the in-browser app if known."""
    text = (
        "# fer_hub: facial-expression recognition\n"
        "Upload a photo or use your webcam. Faces are found with RetinaFace, levelled on the eyes "
        "and framed like FER-2013's faces, and each is scored on "
        "seven expressions by a CNN trained on FER-2013; probabilities are calibrated, and a face "
        "the model is unsure about is marked *uncertain*. Expressions are not emotions: "
        "not for decisions about people."
    )
    if url := static_app_url():
        text += (
            f"\n\n[Run the same models in your browser]({url}): nothing is uploaded, the camera view is live."
        )
    return text
