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
