"""Calibration: temperature scaling, ECE, the 'uncertain' threshold, and a calibrated folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import largest_int8_weight

from fer_hub import load_model
from fer_hub.errors import NotFoundError
from fer_hub.labels import EMOTIONS
from fer_hub.onnx_model import INT8_FILE, OnnxClassifier
from fer_hub.predict import Predictor
from fer_hub.scaling import bias_vector, calibrated_probabilities
from fer_hub.training.calibration import (
    bias_cross_validation,
    calibration_report,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    fit_temperature_and_bias,
    sharpness_range,
    uncertain_threshold,
)
from fer_hub.training.cli import calibrate_main as main
from fer_hub.training.data import load_fer2013
from fer_hub.training.folder import calibrate_folder

ROOT = Path(__file__).resolve().parents[1]


def sampled(n: int, seed: int, sharpness: float = 1.0):
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 7, generator=g) * 2
    labels = torch.multinomial(logits.softmax(-1), 1, generator=g).flatten()
    return logits * sharpness, labels


def test_fitted_temperature_undoes_known_overconfidence():
    logits, labels = sampled(20000, 0, sharpness=3.0)  # 3x too confident
    assert fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.05)
    logits, labels = sampled(20000, 1, sharpness=1.0)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.05)


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    logits, labels = sampled(20000, 2)
    assert expected_calibration_error(logits.softmax(-1), labels) < 0.02
    assert expected_calibration_error((logits * 4).softmax(-1), labels) > 0.1


def test_ece_on_a_hand_computed_example():
    # Two bins used: confidence 0.9 (2 samples, 1 right) and 0.6 (2 samples, both right).
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = torch.tensor([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_uncertain_threshold_is_the_smallest_that_reaches_the_target_accuracy():
    # Confidences 0.9..0.5; right, right, wrong, right, wrong.
    probs = torch.tensor([[c, 1 - c] for c in (0.9, 0.8, 0.7, 0.6, 0.55)])
    labels = torch.tensor([0, 0, 1, 0, 1])
    assert uncertain_threshold(probs, labels, target=0.75) == pytest.approx(0.6)  # keeps 3 of 4 right
    assert uncertain_threshold(probs, labels, target=1.0) == pytest.approx(0.8)
    assert uncertain_threshold(probs, torch.ones(5, dtype=torch.long), target=0.5) == 1.0  # none reach it
    curve = coverage_curve(probs, labels, thresholds=[0.0, 0.6, 0.95])
    assert [c["coverage"] for c in curve] == [1.0, 0.8, 0.0]
    assert curve[1]["accuracy"] == pytest.approx(0.75) and curve[2]["accuracy"] is None


def test_report_fits_on_validation_and_measures_on_test():
    (val, yv), (test, yt) = sampled(5000, 3, 2.5), sampled(5000, 4, 2.5)
    r = calibration_report(val, yv, test, yt, target=0.7)
    assert r["temperature"] == pytest.approx(2.5, rel=0.1)
    assert (
        r["test"]["ece_after"] < r["test"]["ece_before"] and r["test"]["nll_after"] < r["test"]["nll_before"]
    )
    assert r["test"]["accuracy_kept"] >= 0.65 and 0 < r["test"]["coverage"] < 1


SHIFT = torch.tensor([0.0, -1.0, 0.5, 0.8, 1.2, 0.3, -0.2])  # the class shares the network over-learnt


def shifted(n: int, seed: int):
    """Logits of a network that over-predicts by `SHIFT` (and is 2x overconfident): the labels
    are drawn from softmax(logits / 2 - SHIFT)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 7, generator=g) * 3
    labels = torch.multinomial((logits / 2 - SHIFT).softmax(-1), 1, generator=g).flatten()
    return logits, labels


def test_the_class_bias_undoes_a_known_shift_and_is_kept_because_it_predicts_held_out_faces_better():
    (val, yv), (test, yt) = shifted(6000, 5), shifted(6000, 6)
    t, b = fit_temperature_and_bias(val, yv)
    assert t == pytest.approx(2.0, rel=0.1)
    assert b.tolist() == pytest.approx((-SHIFT + SHIFT.mean()).tolist(), abs=0.1)  # up to a constant
    r = calibration_report(val, yv, test, yt)
    cv = r["class_bias_cross_validation"]
    assert cv["bias_kept"] and cv["temperature_and_bias"]["nll"] < cv["temperature"]["nll"]
    assert cv["temperature_and_bias"]["macro_f1"] >= cv["temperature"]["macro_f1"]
    assert list(r["class_bias"]) == list(EMOTIONS)  # by name
    # it moves labels, towards the truth: accuracy on test rises, and so do the kept faces
    without = calibration_report(val, yv, test, yt, class_bias=False)
    assert without["class_bias"] is None and without["class_bias_cross_validation"] is None
    accuracy = lambda rep: float(  # noqa: E731
        (
            calibrated_probabilities(
                test, rep["temperature"], bias_vector(rep["class_bias"], EMOTIONS)
            ).argmax(-1)
            == yt
        )
        .float()
        .mean()
    )
    assert accuracy(r) > accuracy(without) + 0.01
    assert r["test"]["nll_after"] < without["test"]["nll_after"]


def test_a_class_bias_that_buys_likelihood_by_giving_up_a_rare_expression_is_not_kept():
    """A rare class, hard to tell apart, that the network over-predicts: the bias that fits the
    likelihood best all but stops predicting it, which macro-F1 (every expression counts the
    same) catches."""
    g = torch.Generator().manual_seed(0)
    true = torch.randn(4000, 7, generator=g) * 2
    true[:, 1] = true[:, 1] * 0.5 - 2.5  # 1% of the faces, with a weak signal
    labels = torch.multinomial(true.softmax(-1), 1, generator=g).flatten()
    logits = true.clone()
    logits[:, 1] += 1.5
    cv = bias_cross_validation(logits, labels)
    without, with_bias = cv["temperature"], cv["temperature_and_bias"]
    assert with_bias["nll"] < without["nll"] and with_bias["macro_f1"] < without["macro_f1"]
    assert not cv["bias_kept"] and calibration_report(logits, labels, None, None)["class_bias"] is None


def test_no_class_bias_is_tried_when_a_class_has_too_few_validation_faces():
    val, yv = shifted(6000, 5)
    few = torch.cat([torch.nonzero(yv != 1).flatten(), torch.nonzero(yv == 1).flatten()[:9]])
    r = calibration_report(val[few], yv[few], None, None)
    assert r["class_bias"] is None and r["class_bias_cross_validation"] is None
    assert calibration_report(val, yv, None, None)["class_bias"] is not None  # with them all: kept


def test_no_class_bias_is_kept_for_logits_whose_class_shares_are_already_right():
    val, yv = sampled(3000, 7, sharpness=2.0)
    cv = bias_cross_validation(val, yv)
    assert not cv["bias_kept"] and cv["temperature_and_bias"]["nll"] >= cv["temperature"]["nll"]
    r = calibration_report(val, yv, None, None)
    assert r["class_bias"] is None and r["temperature"] == pytest.approx(2.0, rel=0.1)


def test_faces_outside_the_sharpness_range_are_unfamiliar_and_the_rest_still_reach_the_target():
    (val, yv), (test, yt) = sampled(6000, 5, 2.0), sampled(6000, 6, 2.0)
    g = torch.Generator().manual_seed(7)
    sharp_val, sharp_test = torch.randn(6000, generator=g), torch.randn(6000, generator=g)
    sharp_val[0] = float("-inf")  # a flat crop: outside any range, and not what the range is fitted on
    r = calibration_report(
        val,
        yv,
        test,
        yt,
        target=0.7,
        val_sharpness=sharp_val,
        test_sharpness=sharp_test,
        unfamiliar_share=0.1,
    )
    low, high = r["sharpness_range"]
    outside = (sharp_val < low) | (sharp_val > high)
    assert float(outside.float().mean()) == pytest.approx(0.1, abs=0.002)  # half at each end
    assert float((sharp_val < low).float().mean()) == pytest.approx(0.05, abs=0.002)
    assert r["validation"]["unfamiliar"] == pytest.approx(float(outside.float().mean()))
    # the threshold is fitted on the faces inside, and the faces kept are as accurate as promised
    probs = (val / r["temperature"]).softmax(-1)
    assert r["uncertain_below"] == pytest.approx(uncertain_threshold(probs[~outside], yv[~outside], 0.7))
    kept = (probs.max(-1).values >= r["uncertain_below"]) & ~outside
    assert r["validation"]["coverage"] == pytest.approx(float(kept.float().mean()))
    assert r["validation"]["accuracy_kept"] >= 0.7
    assert r["test"]["unfamiliar"] == pytest.approx(
        float(((sharp_test < low) | (sharp_test > high)).float().mean())
    )
    # without the faces' sharpness there is no range, and the report says so
    plain = calibration_report(val, yv, test, yt, target=0.7)
    assert plain["sharpness_range"] is None and plain["test"]["unfamiliar"] == 0.0


def test_a_share_of_zero_means_no_sharpness_range():
    assert sharpness_range(torch.arange(5.0), share=0) is None
    assert sharpness_range(torch.arange(101.0), share=0.1) == pytest.approx([5.0, 95.0])


@pytest.mark.slow
def test_calibrating_a_folder_writes_config_metrics_plot_and_card(tiny_fer, tmp_path):
    from fer_hub.training.config import TrainConfig
    from fer_hub.training.folder import write_model_folder
    from fer_hub.training.loop import train

    cfg = TrainConfig(dataset=str(tiny_fer), epochs=2, batch_size=32, output=str(tmp_path / "run"))
    folder = write_model_folder(train(cfg, log=lambda *_: None), tmp_path / "folder")
    trained_t = json.loads((folder / "config.json").read_text())["temperature"]
    assert (folder / "reliability_test.png").is_file() and "## Calibration" in (
        folder / "README.md"
    ).read_text()

    # An older folder (no calibration yet) gets it from the command, without retraining.
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    config = json.loads((old / "config.json").read_text())
    for key in ("temperature", "class_bias", "uncertain_below", "sharpness_range", "tta"):
        config.pop(key, None)
    (old / "config.json").write_text(json.dumps(config))
    (old / "reliability_test.png").unlink()
    stale = json.loads((old / "metrics.json").read_text())
    stale["test"]["accuracy_tta"] = -1.0  # as measured by some older scoring code
    (old / "metrics.json").write_text(json.dumps(stale))
    assert load_model(old).temperature == 1.0
    report = calibrate_folder(old, load_fer2013(str(tiny_fer), log=lambda *_: None), log=lambda *_: None)
    model = load_model(old)
    assert model.temperature == pytest.approx(report["temperature"])
    if not report["int8"]:  # fitted on the float weights' logits, as training fitted it
        assert model.temperature == pytest.approx(trained_t, rel=1e-4)
    assert model.uncertain_below == pytest.approx(report["uncertain_below"])
    assert model.sharpness_range == pytest.approx(report["sharpness_range"])
    assert model.class_bias == report["class_bias"]  # a dict by label name, or None
    written = json.loads((old / "metrics.json").read_text())["calibration"]
    assert written == json.loads(json.dumps(report))  # the whole report, as returned
    assert (old / "reliability_test.png").is_file()
    # the scoring (plain or flip TTA) is chosen on validation, and the temperature fitted on it
    from fer_hub.training.evaluate import choose_tta, scored_logits

    data = load_fer2013(str(tiny_fer), log=lambda *_: None)
    chosen, chosen_logits = choose_tta(model, data.x_val, data.y_val)
    assert model.tta == report["tta"] == chosen == json.loads((folder / "config.json").read_text())["tta"]
    assert torch.equal(chosen_logits, scored_logits(model, data.x_val, chosen))
    # ... then the precision, and the temperature is fitted on what the chosen one answers
    scorer = OnnxClassifier(old / INT8_FILE) if report["int8"] else model
    assert model.int8 == report["int8"] == (old / INT8_FILE).is_file()
    refit = calibration_report(scored_logits(scorer, data.x_val, chosen), data.y_val, None, None)
    assert model.temperature == pytest.approx(refit["temperature"], rel=1e-6)
    # the flip-TTA figures are re-measured with the Predictor's scoring (the mean of the logits)
    metrics = json.loads((old / "metrics.json").read_text())
    bias = bias_vector(model.class_bias, model.labels)  # a class bias moves labels: counted
    for split, x, y in (("validation", data.x_val, data.y_val), ("test", data.x_test, data.y_test)):
        flip = calibrated_probabilities(scored_logits(scorer, x, True), model.temperature, bias).argmax(-1)
        assert metrics[split]["accuracy_tta"] == pytest.approx(float((flip == y).float().mean()))


@pytest.mark.slow
@pytest.mark.parametrize("kept", [True, False])
def test_calibrate_keeps_the_int8_export_only_where_validation_says_it_scores_as_well(
    kept, tiny_checkpoints, tiny_fer, tmp_path, monkeypatch, astronaut
):
    from fer_hub.training import folder as folder_module

    chosen = []
    real = folder_module.choose_int8

    def decide(float_logits, int8_logits, y):
        chosen.append(real(float_logits, int8_logits, y))
        return kept

    monkeypatch.setattr(folder_module, "choose_int8", decide)
    folder = tmp_path / "m"
    shutil.copytree(tiny_checkpoints / "custom-cnn", folder)  # the smaller network: the same code path
    report = calibrate_folder(folder, load_fer2013(str(tiny_fer), log=lambda *_: None), log=lambda *_: None)
    assert chosen and report["int8"] is kept and (folder / INT8_FILE).is_file() is kept
    assert set(report["validation_accuracy_by_precision"]) == {"float32", "int8"}
    predictor = Predictor.from_pretrained(folder)
    assert predictor.backend == ("int8" if kept else "onnx")
    if kept:  # the export's own metadata was brought up to date with config.json
        assert OnnxClassifier(folder / INT8_FILE).temperature == pytest.approx(report["temperature"])
        assert largest_int8_weight(folder / INT8_FILE) <= 64  # 7 bits: no CPU saturates its sums
        int8, float32 = predictor(astronaut), Predictor.from_pretrained(folder, backend="onnx")(astronaut)
        assert int8["faces"][0]["box"] == float32["faces"][0]["box"]
        (folder / INT8_FILE).unlink()  # a copy of the folder that lost it still works, in float
        with pytest.warns(UserWarning, match="no model.int8.onnx"):
            assert Predictor.from_pretrained(folder).backend == "onnx"
        with pytest.raises(NotFoundError):
            Predictor.from_pretrained(folder, backend="int8")


def test_int8_is_chosen_only_within_its_tolerance_of_the_float_accuracy():
    from fer_hub.training.evaluate import INT8_TOLERANCE, choose_int8

    y = torch.arange(1000) % 7
    right = torch.nn.functional.one_hot(y, 7).float()
    wrong = lambda n: torch.cat([right[:n].roll(1, -1), right[n:]])  # noqa: E731 - n faces wrong
    at_limit = round(INT8_TOLERANCE * 1000)
    assert choose_int8(right, wrong(at_limit), y)
    assert not choose_int8(right, wrong(at_limit + 1), y)


def test_predictor_applies_the_temperature_and_flags_uncertain_faces(tiny_checkpoints, tmp_path, astronaut):
    folder = tmp_path / "m"
    shutil.copytree(tiny_checkpoints / "custom-cnn", folder)
    plain = Predictor.from_pretrained(folder)(astronaut)["faces"][0]
    config = json.loads((folder / "config.json").read_text())
    config.update(temperature=0.05, uncertain_below=0.99)  # sharpen a near-uniform model a lot
    (folder / "config.json").write_text(json.dumps(config))
    sharp = Predictor.from_pretrained(folder)(astronaut)["faces"][0]
    assert sharp["label"] == plain["label"]  # temperature never changes the prediction
    assert max(sharp["probabilities"].values()) > max(plain["probabilities"].values())
    logp = torch.tensor(list(plain["probabilities"].values())).log()
    expected = (logp / 0.05).softmax(-1)  # softmax(z / T) from softmax(z): same up to a constant
    assert list(sharp["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-4)
    assert plain["uncertain"] is False  # default threshold 0: never uncertain
    assert sharp["uncertain"] is (max(sharp["probabilities"].values()) < 0.99)


@pytest.mark.slow
def test_calibrating_with_test_withheld_reports_validation_alone_and_drops_the_stale_test_figures(
    tiny_checkpoints, tiny_fer, tmp_path, capsys
):
    folder = tmp_path / "candidate"
    shutil.copytree(tiny_checkpoints / "custom-cnn", folder)  # the smaller network: the same code path
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.99}, "n_train": 1}))
    (folder / "confusion_matrix_test.png").write_bytes(b"an older calibration's plot")
    assert main([str(folder), "--dataset", str(tiny_fer), "--withhold-test"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "validation" in metrics and "test" not in metrics and metrics["n_train"] == 1
    assert "test" not in metrics["calibration"] and "test" not in metrics.get("float32_weights", {})
    assert not (folder / "confusion_matrix_test.png").exists()
    assert "test ECE" not in printed and "validation coverage" in printed
    assert load_model(folder).temperature == pytest.approx(metrics["calibration"]["temperature"])


def test_calibration_command_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_no_signal_note_flags_a_smoke_runs_calibration_but_not_the_shipped_models():
    from fer_hub.training.calibration import no_signal_note

    # What a 1-epoch, 500-image run fitted (temperature 124758, threshold 1.0): say so.
    assert "every face will be 'uncertain'" in no_signal_note(124758.5, 1.0)
    assert no_signal_note(1.2, 1.0) and no_signal_note(25.0, 0.3)
    for name in ("custom-cnn", "cnn-model2"):
        config = json.loads((ROOT / "space" / "checkpoints" / name / "config.json").read_text())
        assert no_signal_note(config["temperature"], config["uncertain_below"]) == ""
