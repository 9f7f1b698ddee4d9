"""Predictor on real and generated photos: faces found, boxes, probabilities, robustness."""

from __future__ import annotations

import io
import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from views import FACE_COLUMNS, NO_FACE_HINT, chart_data, face_rows, load_predictors, summary

from fer_hub import EMOTIONS, Predictor
from fer_hub.draw import annotate
from fer_hub.images import ImageError

# The astronaut's face in skimage's 512x512 photo, measured by eye: roughly x 170-280, y 60-180.
FACE_CENTER = (225, 120)


@pytest.fixture(scope="module")
def predictor(tiny_checkpoints):
    return Predictor.from_pretrained(tiny_checkpoints / "custom-cnn")


def check_result(result: dict):
    assert set(result) == {"model", "face_found", "faces"}
    json.dumps(result)  # JSON-serializable, as the API returns it
    for face in result["faces"]:
        assert list(face["probabilities"]) == list(EMOTIONS)
        assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
        assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])


def test_real_photo_one_face_boxed_over_the_face(predictor, astronaut):
    result = predictor(astronaut)
    check_result(result)
    assert result["face_found"] and len(result["faces"]) == 1
    x, y, w, h = result["faces"][0]["box"]
    assert x < FACE_CENTER[0] < x + w and y < FACE_CENTER[1] < y + h
    assert 60 < w < 200 and 60 < h < 200


def test_two_faces_are_both_found_largest_first(predictor, astronaut):
    a = Image.fromarray(astronaut)
    two = Image.new("RGB", (1024, 512))
    two.paste(a, (0, 0))
    two.paste(a.resize((384, 384)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (600, 64))
    result = predictor(two)
    check_result(result)
    assert result["face_found"] and len(result["faces"]) == 2
    (x0, _, w0, _), (x1, _, w1, _) = (f["box"] for f in result["faces"])
    assert w0 > w1 and x0 < 512 < x1  # the full-size face first, the smaller one on the right


def test_no_face_means_no_faces_not_an_invented_one(predictor):
    result = predictor(np.full((120, 160, 3), 127, np.uint8))
    assert result == {"model": predictor.name, "face_found": False, "faces": []}


def test_a_face_crop_is_classified_whole_when_detection_is_off(predictor, astronaut):
    *_, (crop,) = predictor.find_faces(astronaut)  # a face crop, as a FER-2013 image is one
    result = predictor(crop, detect=False)
    check_result(result)
    (face,) = result["faces"]
    assert result["face_found"] is True and face["box"] == [0, 0, *crop.size]
    expected = predictor.classify([crop])[0].tolist()
    assert list(face["probabilities"].values()) == pytest.approx(expected, abs=1e-6)
    wall = np.full((120, 160, 3), 127, np.uint8)
    assert [len(r["faces"]) for r in predictor.batch([wall, crop], detect=False)] == [1, 1]


def test_fer2013_crops_shipped_with_the_tests_are_scored_whole_as_the_network_sees_them():
    """The 48x48 FER-2013 crops (tests/data/fer2013) through the shipped model's Predictor with
    detect=False: one face each, filling the image, with the probabilities the network gives
    that very image (no resize, no framing in between), scored as the model's config says
    (its flip TTA, if on; its temperature and class bias)."""
    from pathlib import Path

    from fer_hub.models import tta_logits
    from fer_hub.preprocess import normalize

    root = Path(__file__).parent
    predictor = Predictor.from_pretrained(root.parent / "space" / "checkpoints" / "cnn-model2")
    crops = sorted((root / "data" / "fer2013").glob("*.png"))
    results = predictor.batch([str(c) for c in crops], detect=False)
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(c), np.float32) / 255)[None] for c in crops])
    with torch.no_grad():
        model = predictor.model  # the classifier it runs (the int8 export, on a CPU)
        logits = tta_logits(model, normalize(x)) if predictor.tta else model(normalize(x))
    labels = predictor.torch_model.labels  # its calibration: temperature and class bias, by name
    bias = torch.tensor([(predictor.torch_model.class_bias or {}).get(e, 0.0) for e in labels])
    expected = (logits / predictor.temperature + bias).softmax(-1)[:, [labels.index(e) for e in EMOTIONS]]
    for crop, result, p in zip(crops, results, expected):
        check_result(result)
        (face,) = result["faces"]
        assert face["box"] == [0, 0, 48, 48], crop.name
        assert list(face["probabilities"].values()) == pytest.approx(p.tolist(), abs=1e-5), crop.name


@pytest.mark.parametrize("kind", ["pil", "gray", "float", "path", "bytes", "file"])
def test_every_input_kind_gives_the_same_answer(predictor, astronaut, kind, tmp_path):
    pil = Image.fromarray(astronaut)
    path = tmp_path / "a.png"
    pil.save(path)
    inputs = {
        "pil": pil,
        "gray": np.asarray(pil.convert("L")).copy(),
        "float": astronaut / 255.0,
        "path": str(path),
        "bytes": path.read_bytes(),
        "file": io.BytesIO(path.read_bytes()),
    }
    ref = predictor(astronaut)
    out = predictor(inputs[kind])
    if kind == "gray":  # the detector sees no colour: the same face, a box a pixel or two apart
        from fer_hub.tracking import iou

        assert iou(out["faces"][0]["box"], ref["faces"][0]["box"]) > 0.9
        assert out["faces"][0]["probabilities"] == pytest.approx(ref["faces"][0]["probabilities"], abs=0.02)
        return
    assert out["faces"][0]["box"] == ref["faces"][0]["box"]
    assert out["faces"][0]["probabilities"] == pytest.approx(ref["faces"][0]["probabilities"], abs=1e-3)


def test_huge_and_tiny_images(predictor, astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((10_000, 10_000), Image.Resampling.NEAREST))
    result = predictor(big)
    check_result(result)
    x, y, w, h = result["faces"][0]["box"]  # boxes are in the original 10,000 px frame
    assert x < FACE_CENTER[0] * 10_000 / 512 < x + w
    tiny = predictor(np.zeros((1, 1), np.uint8))
    assert tiny["face_found"] is False and tiny["faces"] == []
    assert predictor(np.zeros((1, 1), np.uint8), detect=False)["faces"][0]["box"] == [0, 0, 1, 1]


def test_batch_matches_single_calls(predictor, astronaut):
    images = [astronaut, np.zeros((50, 50), np.uint8), astronaut[::-1]]
    for batched, single in zip(predictor.batch(images), [predictor(im) for im in images]):
        assert batched["face_found"] == single["face_found"]
        for a, b in zip(batched["faces"], single["faces"], strict=True):
            assert a["box"] == b["box"] and a["label"] == b["label"]
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)


def test_flip_tta_averages_the_mirror(predictor, astronaut):
    from PIL import ImageOps

    *_, (crop,) = predictor.find_faces(astronaut)
    face = crop.resize((48, 48))  # the network's size: mirroring it is exactly the flip TTA makes
    plain, mirrored = predictor.classify([face]), predictor.classify([ImageOps.mirror(face)])
    assert torch.allclose(predictor.classify([face], tta=True), (plain + mirrored) / 2, atol=1e-6)
    assert not torch.allclose(plain, mirrored, atol=1e-4)  # a mean of two different answers
    whole = predictor(astronaut, tta=True)["faces"][0]["probabilities"]
    assert list(whole.values()) == pytest.approx(predictor.classify([crop], tta=True)[0].tolist(), abs=1e-6)


def test_concurrent_calls_from_threads_agree(predictor, astronaut):
    ref = predictor(astronaut)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: predictor(astronaut), range(32)))
    assert all(r == ref for r in results)


def test_bad_bytes_raise_image_error(predictor):
    with pytest.raises(ImageError, match="not an image"):
        predictor(b"GIF89a but not really")


def test_annotate_draws_boxes_on_a_colour_copy(predictor, astronaut):
    result = predictor(astronaut)
    drawn = np.asarray(annotate(astronaut, result))
    assert drawn.shape == astronaut.shape
    x, y, w, h = result["faces"][0]["box"]
    assert not np.array_equal(drawn[y + h // 2, x], astronaut[y + h // 2, x])  # box edge drawn
    assert np.array_equal(drawn[500, 500], astronaut[500, 500])  # far away: untouched


def test_service_helpers_shape_results_for_display(predictor, astronaut):
    result = predictor(astronaut)
    chart = chart_data(result)
    assert list(chart) == list(EMOTIONS) and sum(chart.values()) == pytest.approx(1, abs=1e-5)
    rows = face_rows(result)
    (row,) = rows
    assert dict(zip(FACE_COLUMNS, row))["label"] == result["faces"][0]["label"]
    assert dict(zip(FACE_COLUMNS, row))["x"] == result["faces"][0]["box"][0]
    assert "1 face found" in summary(result)


def test_no_face_means_no_chart_and_a_hint_what_to_try(predictor):
    import numpy as np

    result = predictor(np.full((200, 300), 128, np.uint8))  # a gray wall
    assert result["face_found"] is False
    assert chart_data(result) == {} and face_rows(result) == []
    assert summary(result) == NO_FACE_HINT and "Try" in NO_FACE_HINT


def test_missing_checkpoints_name_the_path_and_the_command(tmp_path, tiny_checkpoints):
    with pytest.raises(FileNotFoundError) as err:
        load_predictors(tmp_path / "checkpoints")
    msg = str(err.value)
    assert str(tmp_path / "checkpoints") in msg
    assert (
        f"python train_hub.py --model cnn-model2 --recipe strong --output {tmp_path / 'checkpoints'}" in msg
    )
    # One model present: the Space serves it and warns about the other.
    import shutil

    shutil.copytree(tiny_checkpoints / "custom-cnn", tmp_path / "checkpoints" / "custom-cnn")
    with pytest.warns(UserWarning, match=r"(?s)serving custom-cnn only.*--model cnn-model2"):
        assert list(load_predictors(tmp_path / "checkpoints")) == ["custom-cnn"]
    both = load_predictors(tiny_checkpoints)
    assert list(both) == ["cnn-model2", "custom-cnn"]  # the default first: the Space's menu order
    assert both["custom-cnn"].detector is both["cnn-model2"].detector


def test_fer_model_repo_env_loads_named_sources(tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("FER_MODEL_REPO", str(tiny_checkpoints / "cnn-model2"))
    assert list(load_predictors("/nonexistent")) == ["cnn-model2"]


def test_cpu_default_classifies_with_onnxruntime_and_agrees_with_torch(
    predictor, tiny_checkpoints, astronaut
):
    assert predictor.backend == "onnx"
    torch_predictor = Predictor.from_pretrained(tiny_checkpoints / "custom-cnn", backend="torch")
    assert torch_predictor.backend == "torch"
    a = predictor(astronaut)["faces"][0]["probabilities"]
    b = torch_predictor(astronaut)["faces"][0]["probabilities"]
    assert max(abs(a[e] - b[e]) for e in EMOTIONS) < 1e-4


def test_a_failed_onnx_export_falls_back_to_torch_unless_onnx_was_asked_for(tiny_checkpoints, monkeypatch):
    from fer_hub.models import load_model
    from fer_hub.onnx_model import OnnxClassifier

    def broken(*_args, **_kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(OnnxClassifier, "from_torch", broken)
    model = load_model(tiny_checkpoints / "custom-cnn")
    with pytest.warns(UserWarning, match="exporter exploded"):
        assert Predictor(model).backend == "torch"
    with pytest.raises(RuntimeError, match="exporter exploded"):
        Predictor(model, backend="onnx")
    with pytest.raises(ValueError, match="backend must be"):
        Predictor(model, backend="tensorrt")


@pytest.mark.slow
def test_onnx_export_is_cached_and_reused_only_for_the_same_model(tmp_path, monkeypatch):
    import torch

    from fer_hub import CustomCNN, onnx_model
    from fer_hub.onnx_model import OnnxClassifier, export_cache_path

    monkeypatch.setenv("FER_HUB_CACHE", str(tmp_path))
    exports = []
    real_export = onnx_model.export_onnx
    monkeypatch.setattr(
        onnx_model, "export_onnx", lambda m, p, **kw: exports.append(p) or real_export(m, p, **kw)
    )
    torch.manual_seed(0)
    model, x = CustomCNN().eval(), torch.randn(4, 1, 48, 48)
    first, second = OnnxClassifier.from_torch(model), OnnxClassifier.from_torch(model)
    assert len(exports) == 1 and second.path == export_cache_path(model)
    assert torch.equal(first(x), second(x))

    torch.manual_seed(1)
    OnnxClassifier.from_torch(CustomCNN().eval())  # other weights: another file
    recalibrated = CustomCNN(temperature=2.0).eval()
    recalibrated.load_state_dict(model.state_dict())  # same weights, other temperature: another file
    assert OnnxClassifier.from_torch(recalibrated).temperature == 2.0
    assert len(exports) == 3

    export_cache_path(model).write_bytes(b"truncated")  # a damaged file is replaced, not trusted
    assert torch.allclose(OnnxClassifier.from_torch(model)(x), first(x), atol=1e-6) and len(exports) == 4
    assert torch.equal(OnnxClassifier(export_cache_path(model))(x), first(x))  # rewritten whole
    OnnxClassifier.from_torch(model, cache=False)
    assert len(exports) == 5 and len(list((tmp_path / "onnx").glob("*.onnx"))) == 3


def test_fer_model_repo_naming_two_models_of_one_architecture_is_refused(tiny_checkpoints, tmp_path):
    import shutil

    twin = tmp_path / "another-custom-cnn"
    shutil.copytree(tiny_checkpoints / "custom-cnn", twin)
    with pytest.raises(
        ValueError, match=r"two custom-cnn models .*another-custom-cnn.*one model per architecture"
    ):
        load_predictors("/nonexistent", repo_ids=f"{tiny_checkpoints / 'custom-cnn'},{twin}")


def test_a_nan_checkpoint_is_refused_by_the_predictor_naming_its_folder(nan_checkpoint):
    with pytest.raises(ValueError, match=f"{nan_checkpoint}: the weights hold NaN"):
        Predictor.from_pretrained(nan_checkpoint)


def test_a_model_that_answers_nan_is_refused(tmp_path):
    import torch

    from fer_hub import CustomCNN

    model = CustomCNN().eval()
    with torch.no_grad():
        model.fc2.bias.fill_(float("inf"))  # finite inputs, infinite logits
    model.fc2.bias.data[0] = float("-inf")
    for backend in ("torch", "onnx"):
        with pytest.raises((ValueError, RuntimeError), match="NaN|infinit|parity"):
            Predictor(model, backend=backend)


def test_a_cached_export_of_another_model_is_not_trusted(tmp_path, monkeypatch):
    import shutil

    import torch

    from fer_hub import CustomCNN
    from fer_hub.onnx_model import OnnxClassifier, export_cache_path

    monkeypatch.setenv("FER_HUB_CACHE", str(tmp_path))
    torch.manual_seed(0)
    mine, x = CustomCNN().eval(), torch.randn(4, 1, 48, 48)
    torch.manual_seed(1)
    other = OnnxClassifier.from_torch(CustomCNN().eval())
    shutil.copyfile(other.path, export_cache_path(mine))  # a whole, loadable, foreign file under my key
    served = OnnxClassifier.from_torch(mine)
    assert torch.allclose(served(x), mine(x), atol=1e-4) and not torch.allclose(
        served(x), other(x), atol=1e-2
    )


def test_a_read_only_cache_with_a_damaged_entry_still_serves(tmp_path, monkeypatch):
    import shutil

    import torch

    from fer_hub import CustomCNN
    from fer_hub.onnx_model import export_cache_path

    monkeypatch.setenv("FER_HUB_CACHE", str(tmp_path))
    model, x = CustomCNN().eval(), torch.randn(4, 1, 48, 48)
    export_cache_path(model).parent.mkdir(parents=True)
    export_cache_path(model).write_bytes(b"damaged")

    def read_only(*_args, **_kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(shutil, "copyfile", read_only)  # tests run as root: chmod would not stop us
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "export failed, using PyTorch"
        predictor = Predictor(model, backend="onnx")
    assert predictor.backend == "onnx" and torch.allclose(predictor.model(x), model(x), atol=1e-4)
    assert export_cache_path(model).read_bytes() == b"damaged"  # left alone, not half-overwritten


def test_a_model_that_scores_with_flip_tta_is_scored_so_by_default_in_one_forward_pass(tiny_checkpoints):
    """A model whose config says tta (chosen on validation) is scored by the mean of each face's
    and its mirror's logits, with its temperature, as one batch of both; tta=False overrides."""
    from fer_hub import load_model
    from fer_hub.preprocess import preprocess

    model = load_model(tiny_checkpoints / "custom-cnn")
    model.tta, model.temperature = True, 1.7
    predictor = Predictor(model, backend="torch")
    assert predictor.tta is True
    crops = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (48, 48), dtype=np.uint8)) for i in range(3)
    ]
    calls = []
    handle = predictor.torch_model.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    try:
        p = predictor.classify(crops)
    finally:
        handle.remove()
    assert calls == [6]  # the three faces and their mirror images, one batch
    x = preprocess(crops)
    with torch.no_grad():
        mean = (model(x) + model(x.flip(-1))) / 2
    order = [model.labels.index(e) for e in EMOTIONS]
    assert torch.allclose(p, (mean / 1.7).softmax(-1)[:, order], atol=1e-5)
    with torch.no_grad():
        plain = (model(x) / 1.7).softmax(-1)[:, order]
    assert torch.allclose(predictor.classify(crops, tta=False), plain, atol=1e-5)
    assert Predictor(model, backend="torch", tta=False).tta is False


def test_the_onnx_classifier_carries_the_models_scoring_and_scores_as_torch_does(tiny_checkpoints, tmp_path):
    from fer_hub import CnnModel2, load_model

    model = CnnModel2(tta=True, temperature=1.3)  # as calibration writes a folder that chose TTA
    model.load_state_dict(load_model(tiny_checkpoints / "cnn-model2").state_dict())
    folder = tmp_path / "tta"
    model.save_pretrained(folder)
    assert load_model(folder).tta is True  # config.json carries it
    onnx_predictor = Predictor.from_pretrained(folder, backend="onnx")
    torch_predictor = Predictor.from_pretrained(folder, backend="torch")
    assert onnx_predictor.model.tta is True and onnx_predictor.tta is True
    crops = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (48, 48), dtype=np.uint8)) for i in range(4)
    ]
    assert torch.allclose(onnx_predictor.classify(crops), torch_predictor.classify(crops), atol=1e-4)


def test_a_blurred_or_noisy_face_is_unfamiliar_and_uncertain_in_every_backend(tiny_checkpoints, tmp_path):
    """The sharpness range travels in config.json and in the ONNX export's metadata, and the
    Predictor marks unfamiliar, and uncertain, exactly the crops outside it, however confident
    their probabilities."""
    from PIL import ImageFilter

    from fer_hub import CustomCNN, load_model
    from fer_hub.preprocess import preprocess
    from fer_hub.quality import sharpness

    trained = load_model(tiny_checkpoints / "custom-cnn")
    faces = [
        Image.open(f).convert("L") for f in sorted((Path(__file__).parent / "data" / "fer2013").glob("*.png"))
    ]
    noise = np.random.default_rng(0).normal(0, 40, (48, 48))
    crops = [
        *faces,
        faces[0].filter(ImageFilter.GaussianBlur(2)),  # out of focus
        faces[1].resize((12, 12)).resize((48, 48)),  # shrunk from a few pixels
        Image.fromarray(np.clip(np.asarray(faces[2], float) + noise, 0, 255).astype(np.uint8)),  # noise
        Image.new("L", (48, 48), 128),  # no face at all: flat
    ]
    sharp = sharpness(preprocess(faces))
    model = CustomCNN(sharpness_range=[float(sharp.min()) - 0.1, float(sharp.max()) + 0.1])
    model.load_state_dict(trained.state_dict())
    folder = tmp_path / "ranged"
    model.save_pretrained(folder)
    assert load_model(folder).sharpness_range == model.sharpness_range
    expected = [False] * len(faces) + [True] * 4
    for backend in ("torch", "onnx"):
        predictor = Predictor.from_pretrained(folder, backend=backend)
        _, unfamiliar, uncertain = predictor.score(crops)
        assert unfamiliar.tolist() == expected, backend
        assert uncertain.tolist() == expected  # its threshold is 0: only the range flags
        results = [predictor(c, detect=False)["faces"][0] for c in crops]
        assert [f["unfamiliar"] for f in results] == [f["uncertain"] for f in results] == expected
    assert predictor.model.sharpness_range == pytest.approx(model.sharpness_range)  # the export's metadata
    assert Predictor(trained, backend="torch").score(crops).unfamiliar.sum() == 0  # no range: never


def test_the_shipped_models_classify_with_their_int8_export_where_they_chose_it(astronaut):
    """`from_pretrained` gives a CPU Predictor the folder's int8 export when its config chose it on
    validation; a Predictor built from the model alone, or asked for "onnx", runs the float
    weights; the two agree on the astronaut's face."""
    from pathlib import Path

    from fer_hub import load_model
    from fer_hub.onnx_model import INT8_FILE

    folder = Path(__file__).resolve().parents[1] / "space" / "checkpoints" / "cnn-model2"
    default = Predictor.from_pretrained(folder)
    assert load_model(folder).int8 and default.backend == "int8"
    assert Predictor(load_model(folder)).backend == "onnx"
    assert Predictor(load_model(folder), int8_file=folder / INT8_FILE).backend == "int8"
    int8 = default(astronaut)["faces"][0]
    float32 = Predictor.from_pretrained(folder, backend="onnx")(astronaut)["faces"][0]
    assert int8["box"] == float32["box"] and int8["label"] == float32["label"]
    diff = max(abs(int8["probabilities"][e] - float32["probabilities"][e]) for e in EMOTIONS)
    assert 0 < diff < 0.05  # a different classifier, close to the float one
