"""Metrics against hand-computed values."""

import pytest
import torch

from fer_hub.training.evaluate import classification_metrics


def test_metrics_match_a_hand_computed_example():
    y_true = torch.tensor([0, 0, 1, 1, 3, 3, 3, 6])
    y_pred = torch.tensor([0, 1, 1, 1, 3, 3, 0, 5])
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(5 / 8)
    angry = m["per_class"]["angry"]  # tp 1, predicted 2, true 2
    assert (angry["precision"], angry["recall"], angry["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    happy = m["per_class"]["happy"]  # tp 2, predicted 2, true 3
    assert happy["f1"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert m["per_class"]["surprise"]["support"] == 1 and m["per_class"]["surprise"]["f1"] == 0
    assert m["confusion_matrix"][3] == [1, 0, 0, 2, 0, 0, 0]
    per_class_f1 = [c["f1"] for c in m["per_class"].values()]
    assert m["macro_f1"] == pytest.approx(sum(per_class_f1) / 7)


def test_accuracy_interval_is_the_wilson_95_percent_interval_and_stays_inside_0_1():
    import math

    from fer_hub.training.evaluate import accuracy_interval

    lo, hi = accuracy_interval(0.6804, 3589)
    half = 1.96 * math.sqrt(0.6804 * 0.3196 / 3589)  # the normal approximation, close at this n
    assert lo < 0.6804 < hi and abs((hi - lo) / 2 - half) < 2e-4
    assert (round(100 * lo, 1), round(100 * hi, 1)) == (66.5, 69.5)
    lo, hi = accuracy_interval(1.0, 20)
    assert hi == 1.0 and 0.8 < lo < 0.85  # never a bound past 100%, unlike the normal interval
    assert accuracy_interval(0.0, 20)[0] == 0.0
