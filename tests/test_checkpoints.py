"""The checkpoints that ship in space/checkpoints/: full training runs whose card tells the truth.

Also the guard against committing a smoke run there by accident: CI runs these on every clone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import largest_int8_weight
from safetensors import safe_open

from fer_hub import load_model
from fer_hub.models import SHIPPED_MODELS
from fer_hub.training.evaluate import accuracy_with_interval

CHECKPOINTS = Path(__file__).resolve().parents[1] / "space" / "checkpoints"
# Test accuracy (PrivateTest, plain) each shipped model must reach: the bars.
BARS = {"custom-cnn": 0.640, "cnn-model2": 0.660}


def shipped(name: str) -> Path:
    folder = CHECKPOINTS / name
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"{name} has not shipped yet (no {folder / 'model.safetensors'})")
    return folder


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_checkpoint_is_a_full_training_run_above_the_bar(name):
    folder = shipped(name)
    metrics = json.loads((folder / "metrics.json").read_text())
    args = json.loads((folder / "training_args.json").read_text())
    assert args["model"] == name and args["limit"] is None and not metrics["interrupted"]
    assert metrics["n_train"] == 28709 and metrics["n_test"] == 3589  # all of FER-2013's train
    # a full run, a fine-tune of one that must have beaten its starting weights on validation,
    # or a weight soup of several, better on validation than each ingredient it kept
    init, soup = metrics.get("init"), metrics.get("soup")
    if soup:
        kept = [i for i in soup["ingredients"] if i["kept"]]
        assert len(kept) >= 2 and all(soup["validation_accuracy"] >= i["alone"] for i in kept)
    else:
        assert metrics["epochs_run"] >= 10 or (
            init
            and metrics["epochs_run"] >= 3
            and metrics["validation"]["accuracy"] > init["validation_accuracy"]
        )
    assert metrics["test"]["accuracy"] >= BARS[name]
    assert not (folder / "training_state.pt").exists()
    assert (folder / "model.safetensors").stat().st_size < 16 * 2**20
    with safe_open(folder / "model.safetensors", "pt") as f:
        # every weight is half precision; BatchNorm's step counters stay integers
        floats = {k: str(f.get_slice(k).get_dtype()) for k in f.keys() if "num_batches_tracked" not in k}
        assert set(floats.values()) == {"F16"}
    assert type(load_model(folder)).ARCHITECTURE == name


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_default_predictor_scores_test_faces_as_the_card_says(name, shared_fer):
    """What a user gets, `Predictor.from_pretrained(folder).classify(crops)` with its defaults
    (the folder's scoring, temperature and class bias), is the accuracy and calibration error its card
    quotes for that scoring, and the faces it leaves certain and calls unfamiliar are those the
    card counts."""
    from PIL import Image

    from fer_hub import Predictor
    from fer_hub.training.calibration import expected_calibration_error
    from fer_hub.training.data import load_fer2013

    folder = shipped(name)
    metrics = json.loads((folder / "metrics.json").read_text())
    data = load_fer2013(str(shared_fer), log=lambda *_: None)
    predictor = Predictor.from_pretrained(folder)
    crops = [Image.fromarray(face) for face in data.x_test[:, 0].numpy()]
    probs, unfamiliar, uncertain = predictor.score(crops)
    calibration = metrics["calibration"]["test"]
    assert float(unfamiliar.float().mean()) == pytest.approx(calibration["unfamiliar"], abs=1e-3)
    assert float((~uncertain).float().mean()) == pytest.approx(calibration["coverage"], abs=1e-3)
    right = probs.argmax(-1) == data.y_test
    assert float(right[~uncertain].float().mean()) == pytest.approx(calibration["accuracy_kept"], abs=2e-3)
    accuracy = lambda p: float((p.argmax(-1) == data.y_test).float().mean())  # noqa: E731
    assert accuracy(probs) == pytest.approx(
        metrics["test"]["accuracy_tta" if predictor.tta else "accuracy"], abs=1e-3
    )
    ece = expected_calibration_error(probs, data.y_test)
    assert ece == pytest.approx(metrics["calibration"]["test"]["ece_after"], abs=1e-3)
    other = predictor.classify(crops, tta=not predictor.tta)  # the other scoring's figure too
    assert accuracy(other) == pytest.approx(
        metrics["test"]["accuracy" if predictor.tta else "accuracy_tta"], abs=1e-3
    )


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_shipped_int8_export_carries_its_folders_calibration(name):
    """`Predictor.from_pretrained("model.int8.onnx")`, the export on its own, flags the faces the
    folder flags: the calibration in its metadata is config.json's."""
    from fer_hub.onnx_model import INT8_FILE, OnnxClassifier

    folder = shipped(name)
    model, export = load_model(folder), OnnxClassifier(folder / INT8_FILE)
    keys = ("labels", "temperature", "class_bias", "uncertain_below", "sharpness_range", "tta")
    assert {k: getattr(export, k) for k in keys} == {k: getattr(model, k) for k in keys}
    assert model.sharpness_range is not None  # the shipped folders are calibrated with the range


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_shipped_int8_exports_weights_fit_7_bits_so_no_cpu_saturates_their_sums(name):
    """x86 CPUs without VNNI sum pairs of int8 products in 16 bits: with 8-bit weights they
    saturated and the default lost three points on such a CPU (MODEL_CARD, "7-bit int8 weights")."""
    from fer_hub.onnx_model import INT8_FILE

    assert largest_int8_weight(shipped(name) / INT8_FILE) <= 64


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_models_read_both_smiling_faces_of_the_example_as_happy(name):
    from fer_hub import Predictor

    predictor = Predictor.from_pretrained(shipped(name))
    faces = predictor(CHECKPOINTS.parent / "examples" / "two_faces.jpg")["faces"]
    assert [f["label"] for f in faces] == ["happy", "happy"]
    assert all(f["probabilities"]["happy"] > 0.6 and not f["uncertain"] for f in faces)


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_docs_quote_the_shipped_test_accuracy(name):
    """README, MODEL_CARD and the Space's card state each shipped model's test accuracy; a
    retrained checkpoint must bring them along."""
    accuracy = json.loads((shipped(name) / "metrics.json").read_text())["test"]["accuracy"]
    root = CHECKPOINTS.parents[1]
    for doc, digits in (("README.md", 2), ("MODEL_CARD.md", 2), ("space/README.md", 1)):
        assert f"{100 * accuracy:.{digits}f}%" in (root / doc).read_text(), doc


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_docs_give_the_shipped_test_accuracy_its_95_percent_interval(name):
    """Every accuracy in README and MODEL_CARD comes with its interval (issue 19): the shipped
    model's test figures, plain and by default, each followed by its Wilson interval (bold and a
    line break between them allowed), so a retrained checkpoint cannot leave a stale interval."""
    test = json.loads((shipped(name) / "metrics.json").read_text())["test"]
    root = CHECKPOINTS.parents[1]
    for key in ("accuracy", "accuracy_tta"):
        figure, interval = accuracy_with_interval(test[key], test["n"]).split(" ", 1)
        quoted = re.escape(figure) + r"\**\s*" + re.escape(interval)
        for doc in ("README.md", "MODEL_CARD.md"):
            assert re.search(quoted, (root / doc).read_text()), (doc, figure, interval)


def test_the_default_model_is_the_shipped_one_most_accurate_on_validation():
    """The Space's menu and the command line start on SHIPPED_MODELS[0]: chosen on validation, as
    every model choice here is, never on test."""
    validation = {
        name: json.loads((shipped(name) / "metrics.json").read_text())["validation"]["accuracy"]
        for name in SHIPPED_MODELS
    }
    assert max(validation, key=validation.get) == SHIPPED_MODELS[0]
