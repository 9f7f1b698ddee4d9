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


def test_paired_comparison_counts_the_faces_that_split_two_models_and_gives_mcnemars_exact_p():
    from fer_hub.training.evaluate import paired_comparison

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3589, generator=g) < 0.68
    b = a.clone()
    b[:20] = ~b[:20]  # 20 faces where the two disagree
    only_a, only_b = int((a[:20] & ~b[:20]).sum()), int((b[:20] & ~a[:20]).sum())
    assert paired_comparison(a, b)[:2] == (only_a, only_b) and only_a + only_b == 20
    # hand-computed: 229 against 220 faces, the decision of 2026-12-07 (MODEL_CARD)
    a, b = torch.zeros(449, dtype=torch.bool), torch.zeros(449, dtype=torch.bool)
    a[:229], b[229:] = True, True
    assert paired_comparison(a, b) == (229, 220, pytest.approx(0.7056, abs=1e-3))
    assert paired_comparison(b, a)[2] == paired_comparison(a, b)[2]  # two-sided
    a[:] = False
    a[:10], b[:] = True, False
    assert paired_comparison(a, b)[2] == pytest.approx(2 / 2**10)  # 10 against 0: p = 2 * 0.5**10
    assert paired_comparison(b, b) == (0, 0, 1.0)  # identical answers: no evidence either way


@pytest.mark.parametrize("channels_last", [False, True])
def test_predicting_gives_the_models_own_logits_and_leaves_its_layout_trainable_as_it_was(channels_last):
    from fer_hub.models import CnnModel2
    from fer_hub.preprocess import normalize
    from fer_hub.training.evaluate import predict_logits

    torch.manual_seed(0)
    model = CnnModel2().train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    deep = [p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1]  # layout is visible
    x = torch.randint(0, 256, (20, 1, 48, 48), dtype=torch.uint8)
    logits = predict_logits(model, x, batch_size=8)
    assert model.training  # back in the mode it came in
    with torch.no_grad():
        expected = model.eval()(normalize(x))
    assert torch.allclose(logits, expected, atol=1e-4)
    assert all(p.is_contiguous() is not channels_last for p in deep)
    # its weights are still ordinary tensors, not inference ones: a training step updates them
    before = deep[0].detach().clone()
    optimizer = torch.optim.SGD(model.train().parameters(), lr=0.1)
    model(normalize(x)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, deep[0].detach())
