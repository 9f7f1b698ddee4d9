"""Face detection: real photos, the fallback passes, the detector menu, shrinking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_hub.align import eye_geometry
from fer_hub.faces import WORK_SIZE, FaceDetector, HaarDetector, RetinaFaceDetector, tile_grid

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
    assert RetinaFaceDetector(full_size=320, tiled=False)(canvas) == []  # at 320 px it is 12 px: nothing
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


class CountInputs:
    """Wraps a detector's network: the (height, width) of every input it runs on."""

    def __init__(self, net) -> None:
        self.net, self.shapes = net, []

    def __call__(self, rgb: np.ndarray, score: float):
        self.shapes.append(rgb.shape[:2])
        return self.net(rgb, score)

    def __getattr__(self, name: str):
        return getattr(self.net, name)


@pytest.fixture
def counted(retina, monkeypatch) -> RetinaFaceDetector:
    monkeypatch.setattr(retina, "net", CountInputs(retina.net))
    return retina


def big_photo_with_a_small_face(x: int, y: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A 4000x3000 photo with the astronaut's face about 55x70 px, its head pasted at (x, y), and
    the box the detector gives that face in the pasted head alone, moved to where it was pasted."""
    head = photo().resize((309, 309), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (4000, 3000), (90, 110, 90))
    canvas.paste(head, (x, y))
    (alone,) = RetinaFaceDetector(tiled=False)(head)
    return canvas, (alone.box.x + x, alone.box.y + y, alone.box.w, alone.box.h)


# A face inside one tile, and one across the left edge of the second tile column (at 469 px of the
# 2048 px the 4000 px side has in the tiled pass): cut there, whole in the first column's tile.
@pytest.mark.parametrize("x, y", [(1700, 1300), (791, 1300)])
def test_a_small_face_in_a_big_photo_is_found_by_the_tiled_pass(counted, x, y):
    canvas, expected = big_photo_with_a_small_face(x, y)
    (face,) = counted(canvas)
    # within 4 px of the 2048 px copy the pass ran on (2 px of the photo to each of its pixels)
    assert np.abs(np.subtract(face.box.as_list(), expected)).max() <= 4 * 4000 / WORK_SIZE
    assert all(x <= px <= x + 309 and y <= py <= y + 309 for px, py in face.landmarks)
    tiles = counted.net.shapes[2 + len(counted.tilts) :]  # after the fast, second and tilted passes
    assert len(tiles) == tile_grid(2048, 640) * tile_grid(1536, 640) == 12
    assert all(max(s) <= counted.full_size for s in tiles)


def test_the_small_face_is_below_what_the_passes_before_the_tiled_one_find():
    canvas, _ = big_photo_with_a_small_face(1700, 1300)
    assert RetinaFaceDetector(tiled=False)(canvas) == []


def test_a_photo_with_a_face_an_early_pass_finds_takes_no_tiled_pass(counted):
    (face,) = counted(photo().resize((4000, 4000)))  # an ordinary photo, big
    assert counted.net.shapes == [(320, 320)]  # the fast pass alone
    assert 1000 < face.box.x + face.box.w / 2 < 2500
    counted.net.shapes.clear()
    far = Image.new("RGB", (1600, 1200), (90, 90, 90))
    far.paste(photo().resize((300, 300)), (650, 450))  # a face the second pass finds
    assert len(counted(far)) == 1 and counted.net.shapes == [(240, 320), (480, 640)]


def test_a_big_photo_with_no_face_takes_at_most_the_capped_tiles_and_finds_none(counted):
    from skimage import data

    big = Image.fromarray(data.coffee()).resize((2500, 2500), Image.Resampling.BILINEAR)
    assert counted(big) == []
    tiles = counted.net.shapes[2 + len(counted.tilts) :]
    cap = tile_grid(WORK_SIZE, counted.full_size) ** 2
    assert len(tiles) == cap == 16 and all(s == (640, 640) for s in tiles)


def test_a_frame_of_a_stream_with_nobody_in_view_takes_no_tiled_pass(counted):
    """A live view or video calls the detector on every frame: an empty 1080p frame must cost
    the ordinary passes only, and a frame with the small face comes back empty (the next frame
    comes soon; a still photo takes the tiled pass)."""
    from skimage import data

    empty = Image.fromarray(data.coffee()).resize((1920, 1080), Image.Resampling.BILINEAR)
    assert counted(empty, stream=True) == []
    assert len(counted.net.shapes) == 2 + len(counted.tilts)
    canvas, _ = big_photo_with_a_small_face(1700, 1300)
    assert counted(canvas, stream=True) == [] and len(counted(canvas)) == 1


def test_the_tiled_pass_keeps_no_face_larger_than_the_tile_overlap(retina):
    # A tile can cut such a face, and the earlier passes find it whole: in tiles, the faces that
    # large were magnified textures.
    big = photo().resize((1280, 1280))  # the face is ~230 px
    assert retina._tiles(np.asarray(big)) == [] and len(retina(big)) == 1


@pytest.mark.parametrize("length", [641, 1000, 1280, 1536, 2048])
def test_tiles_cover_each_side_with_the_overlap_and_own_every_pixel_once(length):
    from fer_hub.faces import TILE_OVERLAP, _tile_spans

    spans = _tile_spans(length, 640)
    assert len(spans) == tile_grid(length, 640)
    starts = [s for s, _ in spans]
    assert starts[0] == 0 and starts[-1] + 640 == length
    assert all(b - a <= 640 - TILE_OVERLAP * 640 for a, b in zip(starts, starts[1:]))
    owned = [own for _, own in spans]
    assert owned[0][0] < 0 and owned[-1][1] > length
    assert all(a[1] == b[0] for a, b in zip(owned, owned[1:]))  # no gap, no pixel owned twice
    # whatever a tile owns lies at least half the overlap inside it, unless at the photo's edge
    half = TILE_OVERLAP * 640 / 2
    assert all((lo < 0 or lo - s >= half) and (hi > length or s + 640 - hi >= half) for s, (lo, hi) in spans)


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
