"""fer_hub Space: find faces in a photo, a live webcam or a video and score their expressions.

    python space/app.py            # http://127.0.0.1:7860

API (gradio_client): `/predict` takes an image file, a model name ("cnn-model2", the
default, or "custom-cnn") and `detect` (false: the image is a face crop, scored whole) and returns {"model", "face_found", "faces": [{"box", "label",
"probabilities", "uncertain", "unfamiliar"}]}; `/video` takes a clip and a model name and returns a timeline
plot, a summary and a CSV. Checkpoints come from ./checkpoints/<model> or, if set, from
$FER_MODEL_REPO (Hub repo ids).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # components.py, views.py; and a deployed bundle carries its own fer_hub

from components import (  # noqa: E402
    CsvFileOutput,
    ExpressionChart,
    ImageFileInput,
    PhotoInput,
    Refused,
    ResultJSON,
    VideoInput,
    cannot_read,
    cannot_read_message,
    log,
    refuse,
)
from views import (  # noqa: E402
    CONCURRENCY,
    FACE_COLUMNS,
    KEEP_FILES_S,
    LIVE_CHART_CSS,
    LIVE_MAX_SIDE,
    LIVE_STREAM_EVERY,
    MAX_UPLOAD_BYTES,
    QUEUE_SIZE,
    LiveSession,
    chart_data,
    face_rows,
    intro_markdown,
    live_chart,
    live_status,
    load_predictors,
    photo_chart,
    summary,
    video_report,
)

from fer_hub.draw import annotate  # noqa: E402
from fer_hub.errors import FerHubError  # noqa: E402
from fer_hub.images import ImageError  # noqa: E402
from fer_hub.onnx_session import WAIT_POLICY_ENV  # noqa: E402
from fer_hub.predict import Predictor  # noqa: E402
from fer_hub.video import VideoError  # noqa: E402

# One line per refused request (components.refuse): the operator sees what visitors got wrong.
_log_handler = logging.StreamHandler()
_log_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
logging.getLogger("fer_hub.space").addHandler(_log_handler)
logging.getLogger("fer_hub.space").setLevel(logging.INFO)

# Requests, encoders and streams share a server's cores: onnxruntime's threads sleep between
# operators instead of spinning (fer_hub/onnx_session.py); a deployer may still choose "active".
os.environ.setdefault(WAIT_POLICY_ENV, "passive")
try:
    PREDICTORS = load_predictors(HERE / "checkpoints")  # loaded once, shared by every request
except FerHubError as e:  # nothing to serve: the cause and its fix, not a traceback
    raise SystemExit(f"fer_hub Space cannot start: {e}") from None
MODEL_CHOICES = list(PREDICTORS)
EXAMPLES = sorted(str(p) for p in (HERE / "examples").glob("*.jpg"))
EMPTY = (None, {}, [], "Upload a photo, take a webcam snapshot, or click an example.", None)
# the Photo tab's outputs: the photo itself (cleared after a refusal), then EMPTY's
# Streams served at once: as many as each still get 4+ updates a second on 2 cores
# (benchmarks/bench_live_browser.py; README, "Speed"); more wait in the queue.
LIVE_VIEWERS = 2


def _predictor(model: str) -> Predictor:
    if model not in PREDICTORS:
        raise refuse(f"unknown model {model!r}; choose one of {MODEL_CHOICES}")
    return PREDICTORS[model]


def _run(image_file: str, model: str, explain: bool = False, detect: bool = True) -> dict:
    try:
        return _predictor(model)(image_file, explain=explain, detect=detect)
    except ImageError as e:  # e.reason: what is wrong, never where the server keeps the upload
        raise cannot_read(image_file, e.reason) from None


def predict(image_file: str | None, model: str = MODEL_CHOICES[0], detect: bool = True) -> dict:
    """Find the faces in an image and score each on seven expressions.

    Args:
        image_file: the image to analyse
        model: which CNN scores the faces
        detect: find the faces first (true); false: the image is already a face crop (a FER-2013 image, a cropped photo) and is scored whole, as one face

    Returns:
        faces with boxes, calibrated probabilities, an "uncertain" flag and an "unfamiliar" flag (a face blurrier or noisier than the training faces), largest first
    """
    if not image_file:
        raise refuse("No image given: upload an image file.")
    return _run(image_file, model, detect=detect)


def analyze(image_file: str | Refused | None, model: str, explain: bool = False, cropped: bool = False):
    """The Photo tab: the photo (cleared if it cannot be used), boxed image, chart of the largest
    face, per-face table, summary, JSON. A photo that cannot be used clears every output and
    says why once, in the summary's place."""
    if not image_file:
        return gr.skip(), *EMPTY
    if isinstance(image_file, Refused):
        return _photo_refused(image_file.message)
    try:
        result = _predictor(model)(image_file, explain=explain, detect=not cropped)
    except ImageError as e:  # e.reason: what is wrong, never where the server keeps the upload
        message = cannot_read_message(image_file, e.reason)
        log.info("refused: %s", message)
        return _photo_refused(message)
    shown = {**result, "faces": [{k: v for k, v in f.items() if k != "saliency"} for f in result["faces"]]}
    return (
        gr.skip(),
        annotate(image_file, result),
        photo_chart(result),
        face_rows(result),
        summary(result),
        shown,
    )


def _photo_refused(message: str) -> tuple:
    """The Photo tab's outputs for a photo it cannot use: the message, everything else cleared."""
    return None, None, {}, [], f"**{message}**", None


def live(frame, model: str, session: LiveSession | None):
    """One webcam frame in: the frame with boxes, a bar chart in fixed class order and a status
    line, smoothed over the viewer's recent frames (their tracker lives in their session); the
    chart and the status are sent only when they change."""
    session = session or LiveSession()
    if frame is None:
        return None, gr.skip(), gr.skip(), session
    predictor = _predictor(model)  # the photo tab's detector: the live view finds the same faces
    result = session.tracker.smooth(predictor(frame, stream=True), predictor.uncertain_below)
    top_uncertain = bool(result["faces"]) and bool(result["faces"][0].get("uncertain"))
    chart, status = live_chart(chart_data(result), top_uncertain), live_status(result)
    shown = annotate(frame, result, max_side=LIVE_MAX_SIDE)
    digest = hashlib.blake2b(shown.tobytes(), digest_size=16).digest()
    sent = (
        gr.skip() if digest == session.frame else shown,
        gr.skip() if chart == session.chart else chart,
        gr.skip() if status == session.status else status,
    )
    session.frame, session.chart, session.status = digest, chart, status
    return *sent, session


def video(video_file: str | None, model: str, progress=gr.Progress()):
    """Track the faces of a clip and score their expressions over time.

    Args:
        video_file: the clip to analyse
        model: which CNN scores the faces

    Returns:
        a timeline plot per face, a summary (stride used, share of time per expression), a CSV
    """
    if not video_file:
        raise refuse("No video given: upload a clip (mp4, webm or mov).")
    predictor = _predictor(model)
    # The request's own folder, inside gradio's cache so its files are served and later deleted;
    # a random name, so identical uploads never share (or overwrite) each other's results.
    Path(get_upload_folder()).mkdir(parents=True, exist_ok=True)
    out_dir = tempfile.mkdtemp(prefix="fer_hub-video-", dir=get_upload_folder())
    try:
        plot, note, csv_file = video_report(
            video_file,
            predictor,
            out_dir,
            on_progress=lambda done, total: progress(
                min(done / total, 1.0) if total else None,
                desc=f"frame {done} of {total}" if total else f"frame {done}",
            ),
        )
    except VideoError as e:  # e.reason: what is wrong, never where the server keeps the upload
        raise cannot_read(video_file, e.reason) from None
    return str(plot), note, str(csv_file)


def video_tab(video_file: str | None, model: str, progress=gr.Progress()):
    """The Video tab: `video`, but a clip that cannot be used is explained once, in the
    summary's place, with the previous clip's plot and CSV cleared (a program calling /video
    gets the error itself)."""
    if not video_file:
        return None, "Upload a clip first (mp4, webm or mov).", None
    try:
        return video(video_file, model, progress)
    except gr.Error as e:
        return None, f"**{e.message}**", None


# Uploads and results of every visitor are deleted KEEP_FILES_S after they were made.
with gr.Blocks(title="fer_hub: facial expressions", delete_cache=(KEEP_FILES_S // 6, KEEP_FILES_S)) as demo:
    gr.Markdown(intro_markdown())
    model = gr.Dropdown(MODEL_CHOICES, value=MODEL_CHOICES[0], label="model")
    with gr.Tab("Photo"):
        with gr.Row():
            with gr.Column():
                photo = PhotoInput(
                    type="filepath",
                    sources=["upload", "webcam", "clipboard"],
                    label="photo or webcam snapshot",
                )
                explain = gr.Checkbox(False, label="show where the model looked (Grad-CAM heat map)")
                cropped = gr.Checkbox(
                    False, label="the photo is already a cropped face (classify it whole, no face search)"
                )
            with gr.Column():
                boxed = gr.Image(label="faces", type="pil", format="png", elem_id="photo-out")
                note = gr.Markdown(EMPTY[3])
        chart = ExpressionChart(num_top_classes=7, label="expression probabilities (largest face)")
        table = gr.Dataframe(headers=FACE_COLUMNS, label="all faces", interactive=False)
        with gr.Accordion("JSON", open=False):
            as_json = gr.JSON(label="result")
        outputs = [photo, boxed, chart, table, note, as_json]
        examples = (
            gr.Examples([[p] for p in EXAMPLES], inputs=[photo], cache_examples=False) if EXAMPLES else None
        )
    with gr.Tab("Live webcam"):
        gr.Markdown(
            f"Press the record button to stream. Up to {LIVE_VIEWERS} people can stream at once; "
            "anyone beyond waits in the queue until someone presses Stop, and a stream ends by "
            "itself after about a minute of analysis."
        )
        with gr.Row():
            # 640x480 is what the detector looks at anyway: a larger frame only costs the viewer's
            # upload and the server's decoding, for every frame
            cam = gr.Image(
                sources=["webcam"],
                streaming=True,
                type="numpy",
                label="webcam",
                webcam_options=gr.WebcamOptions(
                    constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}}
                ),
            )
            # JPEG: encoding each returned frame as WebP (the default) took a third of the time.
            cam_out = gr.Image(label="faces", type="pil", format="jpeg", elem_id="live-out")
        cam_status = gr.Markdown(elem_id="live-status")
        # HTML bars, not a plot: a plot re-rendered for every frame cost the browser the time
        # it needed for the next one (benchmarks/bench_live_browser.py)
        cam_chart = gr.HTML(
            live_chart({}),
            css_template=LIVE_CHART_CSS,
            label="expression probabilities (largest face, smoothed)",
        )
        cam_session = gr.State(None)
    with gr.Tab("Video"):
        clip = VideoInput(label="video_file", sources=["upload"])
        clip_run = gr.Button("Analyze video", variant="primary")
        # full width: the summary's table has a column per expression
        clip_note = gr.Markdown(
            "Faces are tracked across frames; each face's probabilities are smoothed over time.",
            label="summary",
        )
        clip_plot = gr.Image(label="timeline", type="filepath")
        clip_csv = CsvFileOutput(label="faces_csv")
    with gr.Tab("API"):
        gr.Markdown(
            "For programs: `Client(url).predict(handle_file('face.jpg'), 'cnn-model2', "
            "api_name='/predict')` returns all seven probabilities per face. Try it here "
            "(uses the model chosen above):"
        )
        api_file = ImageFileInput(label="image_file", type="filepath")
        api_detect = gr.Checkbox(True, label="detect (untick for an image that is already a face crop)")
        api_run = gr.Button("Run /predict")
        api_out = ResultJSON(label="result")

    # Every way of giving a photo (upload, snapshot, paste: `input`; an example: its load event)
    # and every change of a setting runs the analysis, once. Not photo.change: it fires twice
    # when a photo replaces another, and again when a refusal clears the photo.
    photo_events = [photo.input, model.change, explain.change, cropped.change]
    if examples:
        photo_events.append(examples.load_input_event.then)
    for event in photo_events:
        event(analyze, [photo, model, explain, cropped], outputs, api_visibility="private")
    clip_run.click(video_tab, [clip, model], [clip_plot, clip_note, clip_csv], api_visibility="private")
    # /video for programs and agents: the same outputs, and errors raised, not written out
    clip_api = gr.Button(visible=False)
    clip_api.click(video, [clip, model], [clip_plot, clip_note, clip_csv], api_name="video")
    cam.stream(
        live,
        [cam, model, cam_session],
        [cam_out, cam_chart, cam_status, cam_session],
        stream_every=LIVE_STREAM_EVERY,
        time_limit=60,  # seconds of processing, not of wall time
        concurrency_limit=LIVE_VIEWERS,
        show_progress="hidden",  # no pulsing status line or blinking timers on every frame
        api_visibility="private",
    )
    api_run.click(predict, [api_file, model, api_detect], api_out, api_name="predict")

demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
LAUNCH = {"max_file_size": MAX_UPLOAD_BYTES, "mcp_server": True}  # budgets; /predict as an MCP tool

if __name__ == "__main__":
    demo.launch(**LAUNCH)
