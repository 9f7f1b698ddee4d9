"""Gradio components with the errors and API docs a user of this Space should get.

All are `is_template` subclasses: the browser renders them with the parent's front end, only
the server side differs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.components.label import LabelData
from gradio_client import handle_file
from PIL import Image, UnidentifiedImageError
from views import MAX_IMAGE_PIXELS

from fer_hub.images import CORRUPT_IMAGE, NOT_AN_IMAGE, ImageError, check_size, load_image, too_large
from fer_hub.results import json_schema

log = logging.getLogger("fer_hub.space")


def refuse(message: str) -> gr.Error:
    """The error a visitor sees for bad input: shown in the page, one line in the server log
    (no traceback: it is not a bug). `message` must hold no server path."""
    log.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


def cannot_read_message(name: str, reason: str) -> str:
    """What a visitor reads about an upload that cannot be used: the same words at every door."""
    return f"Could not read {Path(name).name}: {reason}."


def cannot_read(name: str, reason: str) -> gr.Error:
    """`refuse` for an upload that cannot be used."""
    return refuse(cannot_read_message(name, reason))


@dataclass(frozen=True)
class Refused:
    """An upload the Photo tab cannot use, handed to its event function instead of an error:
    the page then shows `message` once, where the result would be, instead of an error toast
    and a red badge over the previous result."""

    message: str


IMAGE_FILE_HELP = (
    "An image file with one or more faces (JPEG, PNG, WebP, GIF, BMP or TIFF; any size). "
    "From Python: handle_file('photo.jpg')."
)
# A public-domain portrait (NASA, as shipped with scikit-image): the API page's example runs as is.
EXAMPLE_PHOTO_URL = (
    "https://raw.githubusercontent.com/scikit-image/scikit-image/main/skimage/data/astronaut.png"
)
VIDEO_FILE_HELP = "A video file (mp4, webm, mov, mkv, avi). From Python: handle_file('clip.mp4')."
CSV_HELP = (
    "CSV, one row per face per analysed frame: frame, time_s, track, x, y, w, h, label, uncertain, "
    "unfamiliar, "
    "the seven smoothed probabilities (angry ... surprise, as in fer-hub predict) and the raw ones (raw_angry ...)"
)
RESULT_HELP = (
    '{"model": str, "face_found": bool, "faces": [{"box": [x, y, w, h] (pixels), "label": str, '
    '"probabilities": {angry, disgust, fear, happy, neutral, sad, surprise: float, calibrated, '
    'summing to 1}, "uncertain": bool, "unfamiliar": bool}]}, largest face first; "faces" is [] when no face is found'
)


class PhotoInput(gr.Image):
    """gr.Image that turns an unreadable upload into a `Refused` naming the file and the problem.

    gr.Image opens every upload with PIL before any event function runs; a file PIL cannot read
    would otherwise surface as a bare "Error" badge with the reason only in the server log."""

    is_template = True

    def preprocess(self, payload):
        name = (payload.orig_name if payload is not None else None) or "the upload"
        try:
            if payload is not None and payload.path:
                with Image.open(payload.path) as im:  # the header only: refuse before decoding
                    check_size(*im.size, MAX_IMAGE_PIXELS)
                    if im.mode == "F":  # float pixels, which gr.Image would convert NaN and all
                        load_image(im)  # refuses NaN and infinity in fer_hub's words
            return super().preprocess(payload)
        except ImageError as e:
            reason = e.reason
        except Image.DecompressionBombError:
            reason = too_large(MAX_IMAGE_PIXELS)
        except UnidentifiedImageError:
            reason = NOT_AN_IMAGE
        except (OSError, ValueError, SyntaxError, EOFError):  # what PIL raises for a damaged file
            reason = CORRUPT_IMAGE
        message = cannot_read_message(name, reason)
        log.info("refused: %s", message)
        return Refused(message)


# Gradio reads each component class's source, so these are written out, not made by a factory.
class ImageFileInput(gr.File):
    """gr.File whose API description says what to send, not gradio's FileData docstring, and
    whose "Use via API" example sends a photo of a face (gr.File's own sends a PDF)."""

    is_template = True

    def api_info(self):
        return {**super().api_info(), "additional_description": IMAGE_FILE_HELP}

    def example_payload(self):
        return handle_file(EXAMPLE_PHOTO_URL)

    def example_value(self):
        return EXAMPLE_PHOTO_URL


class VideoInput(gr.Video):
    """gr.Video whose API description says what to send."""

    is_template = True

    def api_info(self):
        return {**super().api_info(), "additional_description": VIDEO_FILE_HELP}


class CsvFileOutput(gr.File):
    """gr.File whose API description says what the file holds."""

    is_template = True

    def api_info(self):
        return {**super().api_info(), "additional_description": CSV_HELP, "description": CSV_HELP}


class ResultJSON(gr.JSON):
    """gr.JSON whose API description is the schema of the result: typed (from
    `fer_hub.results`), not "Any"."""

    is_template = True

    def api_info(self):
        return {**json_schema(), "description": RESULT_HELP}


class ExpressionChart(gr.Label):
    """gr.Label whose headline can say more than the top class ("happy (uncertain)"): a value
    {"headline": str, "confidences": {class: probability}} shows that headline over the bars."""

    is_template = True

    def postprocess(self, value):
        if isinstance(value, dict) and "headline" in value:
            data = super().postprocess(value["confidences"])
            return LabelData(label=value["headline"], confidences=data.confidences) if data else data
        return super().postprocess(value)
