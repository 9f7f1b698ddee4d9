"""Predictor: photos in, faces with expression probabilities out (JSON-serializable dicts).

    predictor = Predictor.from_pretrained("space/checkpoints/custom-cnn")   # or "ORG/NAME"
    predictor("photo.jpg")
    # {"model": "custom-cnn", "face_found": True,
    #  "faces": [{"box": [x, y, w, h], "label": "happy", "probabilities": {"angry": 0.01, ...}}]}

Faces are found with `fer_hub.faces.FaceDetector`, cropped square with a FER-like margin and
classified in one batch. When no face is found the whole image is classified and the result says
`face_found: False`. One Predictor is safe to share between threads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .faces import Box, FaceDetector, crop_face
from .images import load_image
from .labels import EMOTIONS
from .models import load_model
from .preprocess import preprocess

__all__ = ["Predictor"]

# Detection and cropping never need more than this many pixels on the longer side; bigger
# uploads (a 10,000 x 10,000 scan) are downscaled first and boxes scaled back.
_WORK_SIZE = 2048


class Predictor:
    """Face detection + expression classification with one model, loaded once."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        detector: FaceDetector | None = None,
        tta: bool = False,
        margin: float = 0.1,
        name: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.detector = detector if detector is not None else FaceDetector()
        self.tta = tta
        self.margin = margin
        self.name = name or getattr(model, "ARCHITECTURE", type(model).__name__)
        labels = list(getattr(model, "labels", EMOTIONS))
        if sorted(labels) != sorted(EMOTIONS):
            raise ValueError(f"model labels {labels} are not the seven FER-2013 expressions {list(EMOTIONS)}")
        # Reorder the model's outputs into EMOTIONS order, by name.
        self._order = torch.tensor([labels.index(e) for e in EMOTIONS])

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        *,
        tta: bool = False,
        detector: FaceDetector | None = None,
        device: str = "cpu",
        **hub_kwargs,
    ) -> Predictor:
        """Load a model folder written by train_hub.py (or a Hub repo id) into a Predictor."""
        model = load_model(path_or_repo_id, **hub_kwargs)
        return cls(model, detector=detector, tta=tta, device=device)

    def __call__(self, image, *, tta: bool | None = None) -> dict:
        """Analyse one image (PIL, numpy RGB/gray uint8 or float, path, bytes, file object)."""
        return self.batch([image], tta=tta)[0]

    def batch(self, images: Sequence, *, tta: bool | None = None) -> list[dict]:
        """Analyse many images; all their faces go through the network in one batch."""
        found = [self._find_faces(im) for im in images]
        crops = [crop for _, _, face_crops in found for crop in face_crops]
        probs = self.classify(crops, tta=tta)
        results, k = [], 0
        for face_found, boxes, _ in found:
            faces = []
            for box in boxes:
                p = probs[k].tolist()
                k += 1
                faces.append(
                    {
                        "box": box.as_list(),
                        "label": EMOTIONS[int(np.argmax(p))],
                        "probabilities": dict(zip(EMOTIONS, p)),
                    }
                )
            results.append({"model": self.name, "face_found": face_found, "faces": faces})
        return results

    @torch.inference_mode()
    def classify(self, crops: Sequence[Image.Image], *, tta: bool | None = None) -> torch.Tensor:
        """Probabilities (N, 7) in EMOTIONS order for face crops (any size; made 48x48 gray)."""
        if not crops:
            return torch.empty(0, len(EMOTIONS))
        tta = self.tta if tta is None else tta
        out = []
        for i in range(0, len(crops), 256):
            x = preprocess(list(crops[i : i + 256])).to(self.device)
            p = self.model(x).float().softmax(-1)
            if tta:
                p = (p + self.model(x.flip(-1)).float().softmax(-1)) / 2
            out.append(p.cpu())
        return torch.cat(out)[:, self._order]

    def _find_faces(self, image) -> tuple[bool, list[Box], list[Image.Image]]:
        gray = load_image(image)
        W, H = gray.size
        scale = 1.0
        if max(W, H) > _WORK_SIZE:
            scale = max(W, H) / _WORK_SIZE
            gray = gray.resize(
                (max(1, round(W / scale)), max(1, round(H / scale))),
                Image.Resampling.BILINEAR,
                reducing_gap=3.0,
            )
        boxes = self.detector(gray)
        if not boxes:
            # Classify the whole picture (already a face crop, or nothing to find) and say so.
            return False, [Box(0, 0, W, H)], [gray]
        crops = [crop_face(gray, b, self.margin) for b in boxes]
        if scale != 1.0:
            boxes = [
                Box(round(b.x * scale), round(b.y * scale), round(b.w * scale), round(b.h * scale))
                for b in boxes
            ]
        return True, boxes, crops
