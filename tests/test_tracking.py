"""Following faces from frame to frame: stable ids, missed frames, smoothed probabilities."""

from __future__ import annotations

import numpy as np
import pytest

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
