"""fer_hub Space: find faces in a photo, a live webcam or a video and score their expressions.

    python space/app.py            # http://127.0.0.1:7860

API (gradio_client): `/predict` takes an image file and a model name ("cnn-model2", the
default, or "custom-cnn") and returns {"model", "face_found", "faces": [{"box", "label",
"probabilities", "uncertain"}]}; `/video` takes a clip and a model name and returns a timeline
plot, a summary and a CSV. Checkpoints come from ./checkpoints/<model> or, if set, from
$FER_MODEL_REPO (Hub repo ids).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd
from gradio.utils import get_upload_folder

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # components.py, views.py; and a deployed bundle carries its own fer_hub

from components import (  # noqa: E402
    CsvFileOutput,
    ImageFileInput,
    PhotoInput,
    ResultJSON,
    VideoInput,
    cannot_read,
    refuse,
)
from views import (  # noqa: E402
    CONCURRENCY,
    FACE_COLUMNS,
    KEEP_FILES_S,
    MAX_UPLOAD_BYTES,
    QUEUE_SIZE,
    chart_data,
    face_rows,
    live_status,
    load_predictors,
    summary,
    video_report,
)

from fer_hub.draw import annotate  # noqa: E402
from fer_hub.errors import FerHubError  # noqa: E402
from fer_hub.images import ImageError  # noqa: E402
from fer_hub.labels import EMOTIONS  # noqa: E402
from fer_hub.predict import Predictor  # noqa: E402
from fer_hub.tracking import FaceTracker  # noqa: E402
from fer_hub.video import VideoError  # noqa: E402

# One line per refused request (components.refuse): the operator sees what visitors got wrong.
_log_handler = logging.StreamHandler()
_log_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
logging.getLogger("fer_hub.space").addHandler(_log_handler)
logging.getLogger("fer_hub.space").setLevel(logging.INFO)

try:
    PREDICTORS = load_predictors(HERE / "checkpoints")  # loaded once, shared by every request
except FerHubError as e:  # nothing to serve: the cause and its fix, not a traceback
    raise SystemExit(f"fer_hub Space cannot start: {e}") from None
MODEL_CHOICES = list(PREDICTORS)
EXAMPLES = sorted(str(p) for p in (HERE / "examples").glob("*.jpg"))
EMPTY = (None, {}, [], "Upload a photo, take a webcam snapshot, or click an example.", None)
# Streams served at once: as many as still get the frames per second they ask for on the Space's
# 2 cores (benchmarks/bench_live.py measures it; README, "Speed").
LIVE_VIEWERS = 3


def _predictor(model: str) -> Predictor:
    if model not in PREDICTORS:
        raise refuse(f"unknown model {model!r}; choose one of {MODEL_CHOICES}")
    return PREDICTORS[model]


def _run(image_file: str, model: str, explain: bool = False, detect: bool = True) -> dict:
    try:
        return _predictor(model)(image_file, explain=explain, detect=detect)
    except ImageError as e:  # e.reason: what is wrong, never where the server keeps the upload
        raise cannot_read(image_file, e.reason) from None


def predict(image_file: str | None, model: str = MODEL_CHOICES[0]) -> dict:
    """Find the faces in an image and score each on seven expressions.

    Args:
        image_file: the image to analyse
        model: which CNN scores the faces

    Returns:
        faces with boxes, calibrated probabilities and an "uncertain" flag, largest first
    """
    if not image_file:
        raise refuse("No image given: upload an image file.")
    return _run(image_file, model)


def analyze(image_file: str | None, model: str, explain: bool = False, cropped: bool = False):
    """The Photo tab: boxed image, chart of the largest face, per-face table, summary, JSON."""
    if not image_file:
        return EMPTY
    result = _run(image_file, model, explain, detect=not cropped)
    shown = {**result, "faces": [{k: v for k, v in f.items() if k != "saliency"} for f in result["faces"]]}
    return annotate(image_file, result), chart_data(result), face_rows(result), summary(result), shown


def live(frame, model: str, tracker: FaceTracker | None):
    """One webcam frame in: the frame with boxes, a bar chart in fixed class order, a status
    line, all smoothed over the viewer's recent frames (their tracker lives in their session)."""
    if frame is None:
        return None, _bars({}), "", tracker
    tracker = tracker or FaceTracker()
    predictor = _predictor(model)  # the photo tab's detector: the live view finds the same faces
    result = tracker.smooth(predictor(frame), predictor.uncertain_below)
    return annotate(frame, result, max_side=None), _bars(chart_data(result)), live_status(result), tracker


def _bars(probs: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"expression": list(EMOTIONS), "probability": [probs.get(e, 0.0) for e in EMOTIONS]})


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


# Uploads and results of every visitor are deleted KEEP_FILES_S after they were made.
with gr.Blocks(title="fer_hub: facial expressions", delete_cache=(KEEP_FILES_S // 6, KEEP_FILES_S)) as demo:
    gr.Markdown(
        "# fer_hub: facial-expression recognition\n"
        "Upload a photo or use your webcam. Faces are found with RetinaFace, levelled on the eyes "
        "and framed like FER-2013's faces, and each is scored on "
        "seven expressions by a CNN trained on FER-2013; probabilities are calibrated, and a face "
        "the model is unsure about is marked *uncertain*. Expressions are not emotions: "
        "not for decisions about people."
    )
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
                boxed = gr.Image(label="faces", type="pil", format="png")
                note = gr.Markdown(EMPTY[3])
        chart = gr.Label(num_top_classes=7, label="expression probabilities (largest face)")
        table = gr.Dataframe(headers=FACE_COLUMNS, label="all faces", interactive=False)
        with gr.Accordion("JSON", open=False):
            as_json = gr.JSON(label="result")
        outputs = [boxed, chart, table, note, as_json]
        if EXAMPLES:  # a click loads the photo, and loading a photo runs the analysis (below)
            gr.Examples([[p] for p in EXAMPLES], inputs=[photo], cache_examples=False)
    with gr.Tab("Live webcam"):
        gr.Markdown(
            f"Press the record button to stream. Up to {LIVE_VIEWERS} people can stream at once; "
            "anyone beyond waits in the queue until someone presses Stop, and a stream ends by "
            "itself after about a minute of analysis."
        )
        with gr.Row():
            cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="webcam")
            # JPEG: encoding each returned frame as WebP (the default) took a third of the time.
            cam_out = gr.Image(label="faces", type="pil", format="jpeg")
        cam_status = gr.Markdown()
        cam_chart = gr.BarPlot(
            _bars({}),
            x="expression",
            y="probability",
            sort=list(EMOTIONS),  # fixed order: bars do not swap places from frame to frame
            y_lim=[0, 1],
            label="expression probabilities (largest face, smoothed)",
        )
        cam_tracker = gr.State(None)
    with gr.Tab("Video"):
        with gr.Row():
            clip = VideoInput(label="video_file", sources=["upload"])
            with gr.Column():
                clip_run = gr.Button("Analyze video", variant="primary")
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
        api_run = gr.Button("Run /predict")
        api_out = ResultJSON(label="result")

    # Every way of giving a photo (upload, snapshot, paste, example) and every change of a
    # setting re-runs the analysis.
    for event in (photo.change, model.change, explain.change, cropped.change):
        event(analyze, [photo, model, explain, cropped], outputs, api_visibility="private")
    clip_run.click(video, [clip, model], [clip_plot, clip_note, clip_csv], api_name="video")
    cam.stream(
        live,
        [cam, model, cam_tracker],
        [cam_out, cam_chart, cam_status, cam_tracker],
        stream_every=0.15,
        time_limit=60,  # seconds of processing, not of wall time
        concurrency_limit=LIVE_VIEWERS,
        api_visibility="private",
    )
    api_run.click(predict, [api_file, model], api_out, api_name="predict")

demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
LAUNCH = {"max_file_size": MAX_UPLOAD_BYTES, "mcp_server": True}  # budgets; /predict as an MCP tool

if __name__ == "__main__":
    demo.launch(**LAUNCH)
