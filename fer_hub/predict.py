"""Predictor: photos in, faces with expression probabilities out (JSON-serializable dicts).

    predictor = Predictor.from_pretrained("space/checkpoints/cnn-model2")   # or "ORG/NAME"
    predictor("photo.jpg")
    # {"model": "cnn-model2", "face_found": True,
    #  "faces": [{"box": [x, y, w, h], "label": "happy", "probabilities": {"angry": 0.01, ...},
    #             "uncertain": False, "unfamiliar": False}]}

Faces are found with `fer_hub.faces.FaceDetector` (RetinaFace by default), levelled on their
eyes and framed as FER-2013 frames its faces (`fer_hub.align`), and classified in one batch.
Probabilities are calibrated (the model's temperature and class bias, fitted on validation:
`fer_hub.scaling`). A face unlike the faces the model learnt from (its crop blurrier or noisier than
the model's `sharpness_range`, also fitted on validation: a face shrunk from a few pixels, out
of focus, buried in sensor noise) says `"unfamiliar": True`; such a face, and one whose top
probability is below the model's `uncertain_below` threshold, says `"uncertain": True`. When no
face is found, `faces` is empty and `face_found` False. A picture that already is a face crop (a
FER-2013 image, a cropped portrait) is classified whole with `detect=False`. One Predictor is safe to share between threads.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from .align import aligned_square, crop_aligned
from .errors import InputError, NotFoundError
from .explain import gradcam
from .faces import WORK_SIZE, Box, Detector, FaceDetector, crop_face, crop_square, shrink
from .images import MAX_PIXELS, load_image
from .labels import EMOTIONS
from .models import load_model, model_file, tta_logits
from .onnx_model import INT8_FILE
from .onnx_session import wait_policy
from .preprocess import preprocess
from .quality import outside, sharpness
from .results import ImageResult
from .scaling import bias_vector, calibrated_probabilities

__all__ = ["Predictor", "Scores"]


class Scores(NamedTuple):
    """What the classifier says of N face crops, with the model's default scoring."""

    probabilities: torch.Tensor  # (N, 7) calibrated, EMOTIONS order
    unfamiliar: torch.Tensor  # (N,) bool: crop sharpness outside the model's `sharpness_range`
    uncertain: torch.Tensor  # (N,) bool: top probability below `uncertain_below`, or unfamiliar


class Predictor:
    """Face detection + expression classification with one model, loaded once."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        detector: Detector | str | None = None,
        tta: bool | None = None,
        margin: float = 0.1,
        name: str | None = None,
        device: str | torch.device = "cpu",
        backend: str = "auto",
        threads: int | None = None,
        int8_file: str | os.PathLike | None = None,
    ) -> None:
        """`threads` caps the threads onnxruntime's detector and classifier each use (default:
        theirs), for one Predictor among several on a machine.

        `backend`: what runs the classifier. "onnx" exports the model to onnxruntime on the
        spot (parity-checked, then cached on disk per model), faster than torch on a CPU for one
        crop and for batches (`benchmarks/bench_predict.py` measures both); explanation maps still
        use the torch model. "int8" runs `int8_file`, the model's int8 export (INT8_FILE, which
        `from_pretrained` finds beside the weights), about twice as fast again. "torch" keeps
        PyTorch. "auto" (default) is "int8" on the CPU when `int8_file` is given (`from_pretrained`
        gives it for a model whose config chose it on validation, `model.int8`), else "onnx" on
        the CPU and "torch" elsewhere, falling back to torch with a warning if the export fails."""
        if backend not in ("auto", "torch", "onnx", "int8"):
            raise ValueError(f"backend must be 'auto', 'torch', 'onnx' or 'int8', got {backend!r}")
        wait_policy()  # a misspelt FER_HUB_WAIT_POLICY is an error here, not a fallback to torch below
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.torch_model = self.model if isinstance(self.model, torch.nn.Module) else None
        if self.torch_model is None:  # already an OnnxClassifier
            self.backend = "onnx"
        elif backend == "auto":
            cpu = self.device.type == "cpu"
            self.backend = ("int8" if int8_file is not None else "onnx") if cpu else "torch"
        else:
            self.backend = backend
        if self.backend == "int8":
            from .onnx_model import OnnxClassifier

            if int8_file is None:
                raise ValueError("backend 'int8' needs the model's int8 export: load it with from_pretrained")
            self.model = OnnxClassifier(int8_file, threads=threads)
        self.name = name or getattr(model, "ARCHITECTURE", type(model).__name__)
        if self.backend == "onnx" and self.torch_model is not None:
            from .onnx_model import OnnxClassifier

            try:
                self.model = OnnxClassifier.from_torch(self.torch_model.cpu(), threads=threads)
            except Exception as e:  # noqa: BLE001 - any export failure leaves torch, which works
                if backend == "onnx":
                    raise
                warnings.warn(f"ONNX export failed ({e}); classifying with PyTorch", stacklevel=2)
                self.backend = "torch"
        _check_answers(self.model, self.device, getattr(self.model, "path", None) or self.name)
        # A detector, or its name ("retinaface", the default, or "haar").
        if callable(detector):
            self.detector = detector
        else:
            kind = detector or "retinaface"
            options = (
                {"threads": threads} if threads and kind == "retinaface" else {}
            )  # OpenCV's Haar: its own
            self.detector = FaceDetector(kind, **options)
        # None: the model's own default scoring (its config's `tta`, chosen on validation, with
        # the temperature and threshold fitted for it)
        self.tta = bool(getattr(model, "tta", False)) if tta is None else tta
        self.margin = margin
        # Larger photo files are refused from their header, before decoding (a server lowers it).
        self.max_pixels = MAX_PIXELS
        labels = list(getattr(model, "labels", EMOTIONS))
        if sorted(labels) != sorted(EMOTIONS):
            raise InputError(f"model labels {labels} are not the seven FER-2013 expressions {list(EMOTIONS)}")
        self._explain_lock = threading.Lock()
        self.temperature = float(getattr(model, "temperature", 1.0))
        self.class_bias = bias_vector(getattr(model, "class_bias", None), labels)  # model order
        self.uncertain_below = float(getattr(model, "uncertain_below", 0.0))
        self.sharpness_range = getattr(model, "sharpness_range", None)
        # Reorder the model's outputs into EMOTIONS order, by name.
        self._order = torch.tensor([labels.index(e) for e in EMOTIONS])

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        *,
        tta: bool | None = None,
        detector: Detector | str | None = None,
        device: str = "cpu",
        backend: str = "auto",
        threads: int | None = None,
        **hub_kwargs,
    ) -> Predictor:
        """Load a model folder written by train_hub.py, a Hub repo id, or an `.onnx` file
        exported by `fer-hub export` (run by onnxruntime) into a Predictor."""
        int8_file = None
        if str(path_or_repo_id).endswith(".onnx"):
            from .onnx_model import OnnxClassifier

            model = OnnxClassifier(path_or_repo_id, threads=threads)
        else:
            model = load_model(path_or_repo_id, **hub_kwargs)
            if backend == "int8" or (backend == "auto" and device == "cpu" and model.int8):
                try:
                    int8_file = model_file(path_or_repo_id, INT8_FILE, **hub_kwargs)
                except NotFoundError as e:
                    if backend == "int8":
                        raise
                    warnings.warn(f"{e}; classifying with the float weights", stacklevel=2)
                    backend = "onnx"
        return cls(
            model,
            detector=detector,
            tta=tta,
            device=device,
            backend=backend,
            threads=threads,
            int8_file=int8_file,
        )

    def __call__(
        self,
        image,
        *,
        tta: bool | None = None,
        explain: bool = False,
        detect: bool = True,
        stream: bool = False,
    ) -> ImageResult:
        """Analyse one image (PIL, numpy RGB/gray uint8 or float, path, bytes, file object).

        `detect=False`: the image is a face crop; it is classified whole, as one face.
        `stream=True`: a frame of a live view or video; the detector skips its last-resort
        search (tiles of a large frame) when its other passes find nobody.

        `explain=True` adds per face "saliency" (a 48x48 Grad-CAM map in [0, 1], aligned with the
        48x48 crop the network saw), "crop_box" (that crop's square in image pixels, before
        levelling) and "crop_angle" (the rotation that levelled it, in degrees)."""
        return self.batch([image], tta=tta, explain=explain, detect=detect, stream=stream)[0]

    def batch(
        self,
        images: Sequence,
        *,
        tta: bool | None = None,
        explain: bool = False,
        detect: bool = True,
        stream: bool = False,
    ) -> list[ImageResult]:
        """Analyse many images; all their faces go through the network in one batch."""
        found = [self.find_faces(im, detect=detect, stream=stream) for im in images]
        crops = [crop for *_, face_crops in found for crop in face_crops]
        probs, unfamiliar, uncertain = self.score(crops, tta=tta)
        maps = self.explain(crops, probs.argmax(-1)) if explain else None
        results, k = [], 0
        for face_found, boxes, squares, _ in found:
            faces = []
            for box, square in zip(boxes, squares):
                p = probs[k].tolist()
                face = {
                    "box": box.as_list(),
                    "label": EMOTIONS[int(np.argmax(p))],
                    "probabilities": dict(zip(EMOTIONS, p)),
                    "uncertain": bool(uncertain[k]),
                    "unfamiliar": bool(unfamiliar[k]),
                }
                if maps is not None:
                    face["crop_box"] = square[0].as_list()
                    face["crop_angle"] = round(square[1], 2)  # degrees; the crop was levelled by it
                    face["saliency"] = maps[k].round(decimals=3).tolist()
                faces.append(face)
                k += 1
            results.append({"model": self.name, "face_found": face_found, "faces": faces})
        return results

    def explain(self, crops: Sequence[Image.Image], labels: torch.Tensor) -> torch.Tensor:
        """Grad-CAM maps (N, 48, 48) in [0, 1] of class `labels` (EMOTIONS indices) per crop."""
        if not crops:
            return torch.empty(0, 48, 48)
        if self.torch_model is None:
            raise ValueError(
                "explanation maps need the PyTorch model, not an ONNX export: load the model folder"
            )
        target = self._order[labels]  # EMOTIONS index -> the model's own output index
        with self._explain_lock:  # backward hooks on a shared model: one explanation at a time
            return torch.cat(
                [
                    gradcam(
                        self.torch_model,
                        preprocess(list(crops[i : i + 64])).to(self.device),
                        target[i : i + 64],
                    )
                    for i in range(0, len(crops), 64)
                ]
            ).cpu()

    def classify(self, crops: Sequence[Image.Image], *, tta: bool | None = None) -> torch.Tensor:
        """Probabilities (N, 7) in EMOTIONS order for face crops (any size; made 48x48 gray)."""
        return self.score(crops, tta=tta).probabilities

    @torch.inference_mode()
    def score(self, crops: Sequence[Image.Image], *, tta: bool | None = None) -> Scores:
        """Probabilities, and which faces are unfamiliar and uncertain, for face crops."""
        tta = self.tta if tta is None else tta
        probs, sharp = [torch.empty(0, len(EMOTIONS))], [torch.empty(0)]
        for i in range(0, len(crops), 256):
            x = preprocess(list(crops[i : i + 256])).to(self.device)
            logits = tta_logits(self.model, x) if tta else self.model(x)
            # the model's calibration (fer_hub.scaling; plain softmax for an uncalibrated model)
            probs.append(calibrated_probabilities(logits, self.temperature, self.class_bias).cpu())
            sharp.append(sharpness(x).cpu())
        p, unfamiliar = torch.cat(probs)[:, self._order], outside(torch.cat(sharp), self.sharpness_range)
        return Scores(p, unfamiliar, (p.max(-1).values < self.uncertain_below) | unfamiliar)

    def find_faces(
        self, image, *, detect: bool = True, stream: bool = False
    ) -> tuple[bool, list[Box], list[tuple[Box, float]], list[Image.Image]]:
        """(face_found, boxes, crop squares with their rotation in degrees, crops) of one image,
        largest face first; no face: (False, [], [], []). `detect=False`: the whole image is the
        one face (a crop the caller vouches for).

        Faces with landmarks are levelled on their eyes and framed as FER-2013 frames faces
        (`fer_hub.align`); faces without (the Haar detector) are cropped square with a margin."""
        rgb = load_image(image, mode="RGB", max_pixels=self.max_pixels)
        W, H = rgb.size
        rgb, shrunk = shrink(rgb, WORK_SIZE, reducing_gap=3.0)
        scale = 1 / shrunk  # work pixels -> original pixels
        gray = rgb.convert("L")
        if not detect:
            whole = Box(0, 0, W, H)
            return True, [whole], [(whole, 0.0)], [gray]
        faces = self.detector(rgb, stream=stream)
        if not faces:  # nothing to score: an expression for a coffee cup would be invented
            return False, [], [], []
        crops, squares = [], []
        for face in faces:
            if face.landmarks is not None:
                crops.append(crop_aligned(gray, face.landmarks))
                centre, side, angle = aligned_square(face.landmarks)
                x, y = centre - side / 2
                squares.append((Box(round(x), round(y), round(side), round(side)), math.degrees(angle)))
            else:
                crops.append(crop_face(gray, face.box, self.margin))
                squares.append((crop_square(face.box, *gray.size, self.margin), 0.0))
        boxes = [f.box for f in faces]
        if scale != 1.0:
            boxes = [_scaled(b, scale) for b in boxes]
            squares = [(_scaled(b, scale), a) for b, a in squares]
        return True, boxes, squares, crops


def _check_answers(model, device: torch.device, source) -> None:
    """Refuse a classifier that answers NaN or infinity (broken weights that still load, an
    overflowing export): it would call every face one confident label."""
    with torch.inference_mode():
        logits = model(torch.zeros(2, 1, 48, 48, device=device))
    if not bool(torch.isfinite(torch.as_tensor(logits).float()).all()):
        raise InputError(
            f"{source}: the model answers NaN or infinity on a blank face; its weights are broken: "
            f"train it again or restore a good copy"
        )


def _scaled(b: Box, scale: float) -> Box:
    return Box(round(b.x * scale), round(b.y * scale), round(b.w * scale), round(b.h * scale))
