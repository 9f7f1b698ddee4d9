"""fer_hub.scaling: softmax(logits / T + b), the bias keyed by label name, carried by every backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fer_hub import EMOTIONS, CnnModel2, CustomCNN, Predictor, load_model
from fer_hub.errors import InputError
from fer_hub.onnx_model import OnnxClassifier
from fer_hub.scaling import bias_vector, calibrated_probabilities, check_class_bias

BIAS = {
    "angry": 0.1,
    "disgust": -0.5,
    "fear": 0.2,
    "happy": 0.3,
    "neutral": -0.4,
    "sad": 0.25,
    "surprise": 0.05,
}


def crops(n: int = 4) -> list[Image.Image]:
    return [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (48, 48), dtype=np.uint8)) for i in range(n)
    ]


def test_the_bias_is_ordered_by_label_name_not_by_position():
    shuffled = ["surprise", "sad", "neutral", "happy", "fear", "disgust", "angry"]
    assert bias_vector(BIAS, shuffled).tolist() == pytest.approx([BIAS[name] for name in shuffled])
    assert bias_vector(None, EMOTIONS) is None


@pytest.mark.parametrize(
    "bad, says",
    [
        ({k: v for k, v in BIAS.items() if k != "sad"}, "exactly the labels"),
        ({**BIAS, "contempt": 0.0}, "exactly the labels"),
        ({**BIAS, "fear": float("nan")}, "'fear'"),
        ({**BIAS, "happy": "0.3"}, "'happy'"),
        ({**BIAS, "happy": True}, "'happy'"),
        ([0.0] * 7, "map each label"),
    ],
)
def test_a_bias_that_does_not_name_each_label_with_a_finite_number_is_refused(bad, says):
    with pytest.raises(InputError, match=says):
        check_class_bias(bad, EMOTIONS)


def test_calibrated_probabilities_add_the_bias_after_the_temperature():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    b = bias_vector(BIAS, EMOTIONS)
    expected = (logits / 2.0 + b).softmax(-1)
    torch.testing.assert_close(calibrated_probabilities(logits, 2.0, b), expected)
    torch.testing.assert_close(calibrated_probabilities(logits, 2.0), (logits / 2.0).softmax(-1))


def test_a_model_folder_carries_its_bias_and_predict_proba_applies_it(tmp_path):
    torch.manual_seed(0)
    model = CustomCNN(temperature=1.5, class_bias=BIAS).eval()
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["class_bias"] == BIAS
    loaded = load_model(tmp_path / "m")
    assert loaded.class_bias == BIAS
    x = torch.randn(3, 1, 48, 48)
    torch.testing.assert_close(
        loaded.predict_proba(x), (model(x) / 1.5 + bias_vector(BIAS, EMOTIONS)).softmax(-1)
    )


def test_a_folder_whose_bias_misses_a_label_is_refused_when_loaded(tmp_path):
    CustomCNN().save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["class_bias"] = {"happy": 1.0}
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="class_bias must name exactly the labels"):
        load_model(tmp_path / "m")


def test_a_strong_bias_moves_every_label_in_every_backend(tiny_checkpoints, tmp_path):
    """A bias of +30 for "fear" makes every face "fear": the Predictor applies it with torch and
    with ONNX (whose metadata carries it), by name, and an unbiased folder is unmoved."""
    weights = load_model(tiny_checkpoints / "cnn-model2").state_dict()
    folder = tmp_path / "biased"
    model = CnnModel2(class_bias={e: (30.0 if e == "fear" else 0.0) for e in EMOTIONS}, tta=True)
    model.load_state_dict(weights)
    model.save_pretrained(folder)
    plain = Predictor.from_pretrained(tiny_checkpoints / "cnn-model2", backend="torch").classify(crops())
    assert (plain.argmax(-1) != EMOTIONS.index("fear")).any()  # the test means something
    for backend in ("torch", "onnx"):
        p = Predictor.from_pretrained(folder, backend=backend).classify(crops())
        assert (p.argmax(-1) == EMOTIONS.index("fear")).all(), backend
    exported = OnnxClassifier.from_torch(load_model(folder))
    assert exported.class_bias == model.class_bias


def test_the_onnx_and_torch_backends_give_the_same_calibrated_probabilities(tiny_checkpoints, tmp_path):
    weights = load_model(tiny_checkpoints / "custom-cnn").state_dict()
    model = CustomCNN(temperature=0.8, class_bias=BIAS)
    model.load_state_dict(weights)
    model.save_pretrained(tmp_path / "m")
    torch_p = Predictor.from_pretrained(tmp_path / "m", backend="torch").classify(crops())
    onnx_p = Predictor.from_pretrained(tmp_path / "m", backend="onnx").classify(crops())
    torch.testing.assert_close(onnx_p, torch_p, atol=1e-4, rtol=0)
    unbiased = Predictor.from_pretrained(tiny_checkpoints / "custom-cnn", backend="torch")
    assert not torch.allclose(unbiased.classify(crops()), torch_p, atol=1e-3)
