"""Following faces from frame to frame: stable ids, missed frames, smoothed probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from fer_hub.labels import EMOTIONS
from fer_hub.tracking import FaceTracker, iou


def test_tracker_keeps_ids_survives_misses_and_smooths():
    t = FaceTracker(iou_threshold=0.3, max_missed=2, smoothing=0.5)
    a, b = np.eye(7)[3], np.eye(7)[4]
    first = t.update([[0, 0, 100, 100], [300, 0, 100, 100]], [a, b])
    assert [tr.id for tr in first] == [1, 2]
    # Faces move a little and come in the other order: same ids, probabilities averaged.
    second = t.update([[310, 5, 100, 100], [5, 5, 100, 100]], [a, b])
    assert [tr.id for tr in second] == [2, 1]
    assert second[1].probs == pytest.approx(0.5 * a + 0.5 * b)
    # Face 2 vanishes for two updates (kept), then three (dropped); a new face gets a new id.
    t.update([[5, 5, 100, 100]], [a])
    t.update([[5, 5, 100, 100]], [a])
    assert {tr.id for tr in t.tracks} == {1, 2}
    t.update([[5, 5, 100, 100]], [a])
    assert {tr.id for tr in t.tracks} == {1}
    (new,) = t.update([[5, 5, 100, 100], [300, 300, 80, 80]], [a, b])[1:]
    assert new.id == 3
    assert iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("every", [1, 5, 10])
def test_a_small_fast_face_keeps_one_track_at_any_stride(every):
    tracker, ids = FaceTracker(), set()
    for frame in range(0, 150, every):  # a 30 px face crossing at 96 px/s, 25 frames/s
        (track,) = tracker.update([[round(20 + 3.84 * frame), 100, 30, 30]], [np.eye(7)[3]], frame=frame)
        ids.add(track.id)
    assert ids == {1}


def test_two_faces_passing_at_a_stride_keep_their_own_tracks():
    tracker = FaceTracker()
    for frame in range(0, 100, 5):  # side by side, 3 sizes apart, both drifting right
        left, right = tracker.update(
            [[100 + 2 * frame, 100, 40, 40], [220 + 2 * frame, 100, 40, 40]],
            [np.eye(7)[0], np.eye(7)[1]],
            frame=frame,
        )
        assert (left.id, right.id) == (1, 2)


def test_a_face_far_from_any_track_starts_a_new_one():
    tracker = FaceTracker()
    (first,) = tracker.update([[0, 0, 40, 40]], [np.eye(7)[0]], frame=0)
    (second,) = tracker.update([[400, 300, 40, 40]], [np.eye(7)[0]], frame=5)
    assert (first.id, second.id) == (1, 2)


def test_the_timeline_says_how_many_faces_it_left_out(tmp_path, monkeypatch):
    from fer_hub import plots
    from fer_hub.labels import EMOTIONS

    rows = [
        {"track": t, "time_s": i / 10, **{e: 1 / 7 for e in EMOTIONS}} for t in range(1, 9) for i in range(t)
    ]
    titles = []
    real_save = plots._save
    monkeypatch.setattr(
        plots, "_save", lambda fig, path, title="": titles.append(title) or real_save(fig, path, title)
    )
    plots.plot_tracks(rows, tmp_path / "t.png", title="clip.mp4")
    assert titles == ["clip.mp4\n6 of 8 faces shown: the 6 seen longest"]
    plots.plot_tracks(rows[:10], tmp_path / "u.png", title="clip.mp4")  # tracks 1-4: all shown
    assert titles[-1] == "clip.mp4"


def test_the_timeline_key_sits_beside_the_curves_not_on_them(tmp_path, monkeypatch):
    from fer_hub import plots
    from fer_hub.labels import EMOTIONS

    rows = [
        {"track": 1, "time_s": i / 10, **{e: (1.0 if e == "happy" else 0.0) for e in EMOTIONS}}
        for i in range(20)
    ]
    seen = {}

    def keep(fig, path, title=""):
        fig.tight_layout()
        fig.canvas.draw()
        ax = fig.axes[0]
        seen["legend"] = ax.get_legend().get_window_extent()
        seen["axes"] = ax.get_window_extent()
        seen["figure"] = fig.bbox
        return plots._pyplot().close(fig)

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_tracks(rows, tmp_path / "t.png")
    legend, axes, figure = seen["legend"], seen["axes"], seen["figure"]
    assert legend.x0 >= axes.x1  # right of the panel, where the happy line at 1.0 cannot be hidden
    assert legend.x1 <= figure.x1  # and still inside the picture


def test_a_face_unfamiliar_in_this_frame_stays_uncertain_however_confident_its_average():
    t = FaceTracker(smoothing=0.5)
    sure = dict(zip(EMOTIONS, np.eye(7)[3].tolist()))
    face = {"box": [0, 0, 100, 100], "probabilities": sure, "unfamiliar": False}
    (first,) = t.smooth({"faces": [face]}, uncertain_below=0.5)["faces"]
    assert first["label"] == "happy" and not first["uncertain"]
    (second,) = t.smooth({"faces": [{**face, "unfamiliar": True}]}, uncertain_below=0.5)["faces"]
    assert second["label"] == "happy" and second["uncertain"] and second["unfamiliar"]
    (third,) = t.smooth({"faces": [face]}, uncertain_below=0.5)["faces"]
    assert not third["uncertain"]
