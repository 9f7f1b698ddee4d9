"""fer_hub Space: find faces in a photo or a live webcam and score their expressions.

    python space/app.py            # http://127.0.0.1:7860

API (gradio_client): `/predict` takes an image file and a model name ("custom-cnn" or
"cnn-model2") and returns {"model", "face_found", "faces": [{"box", "label", "probabilities"}]}.
Checkpoints come from ./checkpoints/<model> or, if set, from $FER_MODEL_REPO (Hub repo ids).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gradio as gr

HERE = Path(__file__).resolve().parent
if (HERE / "fer_hub").is_dir():  # a deployed Space bundle carries its own copy of the package
    sys.path.insert(0, str(HERE))

from fer_hub.draw import annotate  # noqa: E402
from fer_hub.faces import FaceDetector  # noqa: E402
from fer_hub.images import ImageError  # noqa: E402
from fer_hub.predict import Predictor  # noqa: E402
from fer_hub.service import FACE_COLUMNS, chart_data, face_rows, load_predictors, summary  # noqa: E402

PREDICTORS = load_predictors(HERE / "checkpoints")  # loaded once, shared by every request
MODEL_CHOICES = list(PREDICTORS)
# Webcam faces are large: skipping the smallest scales makes the live view ~2x faster.
LIVE_DETECTOR = FaceDetector(detect_size=240, min_face=0.2)
LIVE = {name: Predictor(p.model, detector=LIVE_DETECTOR) for name, p in PREDICTORS.items()}
EXAMPLES = sorted(str(p) for p in (HERE / "examples").glob("*.jpg"))


def _predictor(model: str, pool: dict = PREDICTORS) -> Predictor:
    if model not in pool:
        raise gr.Error(f"unknown model {model!r}; choose one of {MODEL_CHOICES}")
    return pool[model]


def predict(image_file: str | None, model: str = MODEL_CHOICES[0]) -> dict:
    """Faces and expression probabilities for one image file (the JSON API)."""
    if not image_file:
        raise gr.Error("no image given: upload an image file")
    try:
        return _predictor(model)(image_file)
    except ImageError as e:
        raise gr.Error(f"could not read the image: {e}") from None


def analyze(image_file: str | None, model: str):
    """The UI: boxed image, bar chart of the largest face, per-face table, summary and JSON."""
    result = predict(image_file, model)
    return annotate(image_file, result), chart_data(result), face_rows(result), summary(result), result


def live(frame, model: str):
    """One webcam frame in, the same frame with boxes out, plus the top face's probabilities."""
    if frame is None:
        return None, {}
    result = _predictor(model, LIVE)(frame)
    return annotate(frame, result, max_side=None), chart_data(result) if result["face_found"] else {}


with gr.Blocks(title="fer_hub: facial expressions") as demo:
    gr.Markdown(
        "# fer_hub: facial-expression recognition\n"
        "Upload a photo or use your webcam. Faces are found with OpenCV and each is scored on "
        "seven expressions by a CNN trained on FER-2013. Expressions are not emotions; "
        "not for decisions about people."
    )
    model = gr.Dropdown(MODEL_CHOICES, value=MODEL_CHOICES[0], label="model")
    with gr.Tab("Photo"):
        with gr.Row():
            with gr.Column():
                photo = gr.Image(
                    type="filepath",
                    sources=["upload", "webcam", "clipboard"],
                    label="photo or webcam snapshot",
                )
                run = gr.Button("Analyze", variant="primary")
            with gr.Column():
                boxed = gr.Image(label="faces", type="pil", format="png")
                note = gr.Markdown()
        chart = gr.Label(num_top_classes=7, label="expression probabilities (largest face)")
        table = gr.Dataframe(headers=FACE_COLUMNS, label="all faces", interactive=False)
        with gr.Accordion("JSON", open=False):
            as_json = gr.JSON(label="result")
        if EXAMPLES:
            gr.Examples([[p] for p in EXAMPLES], inputs=[photo], cache_examples=False)
    with gr.Tab("Live webcam"):
        with gr.Row():
            cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="webcam")
            cam_out = gr.Image(label="faces", type="pil")
        cam_chart = gr.Label(num_top_classes=7, label="expression probabilities (largest face)")
    with gr.Tab("API"):
        gr.Markdown(
            "For programs: `Client(url).predict(handle_file('face.jpg'), 'custom-cnn', "
            "api_name='/predict')` returns all seven probabilities per face. Try it here:"
        )
        api_file = gr.File(label="image file", type="filepath")
        api_model = gr.Dropdown(MODEL_CHOICES, value=MODEL_CHOICES[0], label="model")
        api_run = gr.Button("Run /predict")
        api_out = gr.JSON(label="response")

    run.click(analyze, [photo, model], [boxed, chart, table, note, as_json], api_name="analyze")
    photo.upload(analyze, [photo, model], [boxed, chart, table, note, as_json], api_visibility="private")
    cam.stream(
        live,
        [cam, model],
        [cam_out, cam_chart],
        stream_every=0.15,
        time_limit=120,
        concurrency_limit=4,
        api_visibility="private",
    )
    api_run.click(predict, [api_file, api_model], api_out, api_name="predict")

demo.queue(default_concurrency_limit=int(os.environ.get("FER_CONCURRENCY", 4)))

if __name__ == "__main__":
    demo.launch()
