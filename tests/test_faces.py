"""Face detection: real photos, the fallback passes, the detector menu, shrinking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_hub.align import eye_geometry
from fer_hub.faces import FaceDetector, HaarDetector, RetinaFaceDetector

EXAMPLES = Path(__file__).resolve().parents[1] / "space" / "examples"


@pytest.fixture(scope="module")
def retina() -> RetinaFaceDetector:
    return RetinaFaceDetector()


def photo(name: str = "astronaut.jpg") -> Image.Image:
    return Image.open(EXAMPLES / name).convert("RGB")


def test_retinaface_finds_the_face_with_landmarks_in_their_places(retina):
    (face,) = retina(photo())
    x, y, w, h = face.box.as_list()
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200 and face.score > 0.9
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < nose[0] < right_eye[0]  # eyes either side of the nose
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])  # eyes, nose, mouth
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)


@pytest.mark.parametrize("tilt", [-30, 30])
def test_a_tilted_face_is_found_and_its_tilt_measured(retina, tilt):
    tilted = photo().rotate(tilt, expand=True, fillcolor=(90, 90, 90))
    (face,) = retina(tilted)
    _, _, angle = eye_geometry(face.landmarks)
    # PIL rotates counter-clockwise: the eye line then falls to the left (a negative angle for +30).
    assert np.sign(math.degrees(angle)) == -np.sign(tilt) and abs(math.degrees(angle)) > 10


def test_two_faces_are_both_found_largest_first(retina):
    faces = retina(photo("two_faces.jpg"))
    assert len(faces) == 2 and faces[0].box.area >= faces[1].box.area
    assert {f.box.x < 512 for f in faces} == {True, False}


def test_a_face_too_small_for_the_fast_pass_is_found_by_the_full_size_pass(retina):
    canvas = Image.new("RGB", (1600, 1200), (90, 90, 90))
    canvas.paste(photo().resize((300, 300)), (650, 450))  # the face is ~60 px tall
    assert RetinaFaceDetector(full_size=320)(canvas) == []  # at 320 px it is 12 px: nothing
    (face,) = retina(canvas)
    assert 650 < face.box.x + face.box.w / 2 < 950


def test_a_far_face_beside_a_near_one_is_found_too(retina):
    # A near person the fast pass finds for sure, and a far one it only half sees (a face ~26 px
    # wide is ~13 px on the 320 px copy): the weak candidate sends the detector to full size.
    canvas = Image.new("RGB", (640, 480), (90, 110, 90))
    canvas.paste(photo().resize((260, 260)), (40, 100))
    canvas.paste(photo().resize((136, 136)), (470, 200))  # the face is ~26 px wide
    assert len(RetinaFaceDetector(full_size=320)(canvas)) == 1  # the fast pass alone
    assert len(RetinaFaceDetector(hint=0.6)(canvas)) == 1  # no doubt: no second look
    near, far = retina(canvas)
    assert near.box.x < 300 < 470 < far.box.x + far.box.w / 2 < 606


def test_a_small_tilted_face_is_found_by_the_tilted_passes_with_its_landmarks(retina):
    head = (
        photo()
        .resize((150, 150))
        .rotate(-30, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(90, 110, 90))
    )
    canvas = Image.new("RGB", (640, 480), (90, 110, 90))
    canvas.paste(head, (300, 150))  # a ~28 px face, tilted 30 degrees clockwise
    assert RetinaFaceDetector(tilts=())(canvas) == []
    (face,) = retina(canvas)
    assert (
        300 < face.box.x + face.box.w / 2 < 300 + head.width
        and 150 < face.box.y + face.box.h / 2 < 150 + head.height
    )
    # Landmarks mapped back into the photo: the eye line runs down to the right by about 30 degrees.
    assert 20 < math.degrees(eye_geometry(face.landmarks)[2]) < 40


def test_no_face_in_a_face_free_photo(retina):
    from skimage import data

    assert retina(Image.fromarray(data.coffee())) == []
    assert retina(Image.new("RGB", (640, 480), (128, 128, 128))) == []


def test_haar_stays_selectable_and_unknown_detectors_are_refused():
    assert isinstance(FaceDetector("haar"), HaarDetector)
    (face,) = FaceDetector("haar")(photo())
    assert face.landmarks is None and 150 < face.box.x + face.box.w / 2 < 300
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        FaceDetector("yolo")


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (300, 200), (1001, 333)])
def test_shrink_array_gives_the_size_and_scale_shrink_gives(size):
    from fer_hub.faces import shrink, shrink_array

    image = Image.new("RGB", size, (10, 200, 30))
    small, scale = shrink(image, 320)
    arr, arr_scale = shrink_array(np.asarray(image), 320)
    assert arr.shape[:2] == (small.height, small.width) and arr_scale == scale
    assert np.abs(arr.astype(int) - np.asarray(small, dtype=int)).max() <= 1  # a flat colour stays flat
