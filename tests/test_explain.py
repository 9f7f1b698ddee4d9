"""Explanation maps: Grad-CAM shape and range, the model-randomization sanity check, Predictor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fer_hub import EMOTIONS, MODELS, load_model
from fer_hub.explain import gradcam
from fer_hub.predict import Predictor
from fer_hub.preprocess import normalize

SHIPPED = Path(__file__).resolve().parents[1] / "space" / "checkpoints"


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman correlation of two maps (Pearson of their ranks)."""
    ra, rb = (m.flatten().argsort().argsort().double() for m in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def randomized_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return type(model)().eval()  # same architecture, fresh initialization


@pytest.mark.parametrize("name", list(MODELS))
def test_maps_are_48x48_in_0_1_for_every_image(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    x = torch.randn(5, 1, 48, 48)
    maps = gradcam(model, x)
    assert maps.shape == (5, 48, 48) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(m.max() in (0.0, 1.0) for m in maps)  # scaled to peak 1 (or all zero)
    assert not any(p.grad is not None for p in model.parameters())  # leaves the model clean


def sanity_check(model, x: torch.Tensor) -> float:
    """Mean rank correlation between the maps of `model` and of re-initialized copies."""
    maps = gradcam(model, x)
    corrs = []
    for seed in (1, 2):
        random_maps = gradcam(randomized_copy(model, seed), x, target=model(x).argmax(-1))
        corrs += [rank_correlation(a, b) for a, b in zip(maps, random_maps) if a.max() > 0 and b.max() > 0]
    return sum(corrs) / len(corrs)


@pytest.mark.slow
def test_maps_depend_on_the_learned_weights(tiny_fer, tmp_path):
    # Adebayo et al. 2018: a map that survives re-initializing the weights explains nothing.
    from fer_hub.training.config import TrainConfig
    from fer_hub.training.loop import train

    cfg = TrainConfig(dataset=str(tiny_fer), epochs=3, batch_size=32, output=str(tmp_path / "o"))
    result = train(cfg, log=lambda *_: None)
    x = normalize(result.data.x_val[:21])
    assert sanity_check(result.model, x) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["custom-cnn", "cnn-model2"])
def test_shipped_models_pass_the_randomization_check_on_fer_faces(name, shared_fer):
    if not (SHIPPED / name / "model.safetensors").is_file():
        pytest.skip(f"{name} has not shipped yet")
    from fer_hub.training.data import load_fer2013

    data = load_fer2013(str(shared_fer), log=lambda *_: None)
    x = normalize(data.x_test[:64])
    assert sanity_check(load_model(SHIPPED / name), x) < 0.5


def test_predictor_explains_each_face_aligned_with_its_crop(tiny_checkpoints, astronaut):
    predictor = Predictor.from_pretrained(tiny_checkpoints / "custom-cnn")
    plain = predictor(astronaut)
    result = predictor(astronaut, explain=True)
    face = result["faces"][0]
    assert face["label"] == plain["faces"][0]["label"] and "saliency" not in plain["faces"][0]
    sal = torch.tensor(face["saliency"])
    assert sal.shape == (48, 48) and sal.min() >= 0 and sal.max() <= 1
    x, y, w, h = face["box"]
    cx, cy, cw, ch = face["crop_box"]
    # The square the network saw: FER-framed around the detected face (as tight as FER-2013's).
    assert cw == ch and 0.8 * max(w, h) <= cw <= 1.6 * max(w, h)
    assert cx <= x + w / 2 <= cx + cw and cy <= y + h / 2 <= cy + ch
    assert abs(face["crop_angle"]) < 10  # the astronaut holds her head nearly level


def test_the_heat_map_lies_on_its_crop_fades_at_the_edge_and_comes_with_a_colour_key():
    import numpy as np

    from fer_hub.draw import annotate

    gray = np.full((400, 400, 3), 128, np.uint8)
    yy, xx = np.mgrid[0:48, 0:48]
    peak = np.exp(-((xx - 30) ** 2 + (yy - 18) ** 2) / 40.0)  # hot right of centre, above it
    face = {
        "box": [120, 120, 120, 120],
        "label": "happy",
        "probabilities": {e: 1 / 7 for e in EMOTIONS},
        "uncertain": True,
        "crop_box": [100, 100, 160, 160],
        "crop_angle": 0.0,
        "saliency": peak.tolist(),
    }
    plain = np.asarray(annotate(gray, {"faces": [{k: v for k, v in face.items() if k != "saliency"}]}))
    drawn = np.asarray(annotate(gray, {"faces": [face]})).astype(int)
    change = np.abs(drawn - plain).sum(-1)
    inside = change[100:260, 100:260].astype(float)
    # aligned: the strongest change is where the map's peak falls in the crop (48 -> 160 px)
    y, x = np.unravel_index(inside.argmax(), inside.shape)
    assert abs(x - 30 * 160 / 48) < 12 and abs(y - 18 * 160 / 48) < 12
    # smooth: nothing of the map at the crop's edge, so no hard square around the face
    ring = np.concatenate(
        [inside[:3].ravel(), inside[-3:].ravel(), inside[:, :3].ravel(), inside[:, -3:].ravel()]
    )
    assert ring.mean() < 0.05 * inside.max()
    # keyed: a colour key in the lower left corner, only when a map is drawn
    corner = (slice(330, 400), slice(0, 120))
    assert change[corner].sum() > 0
    assert (np.asarray(annotate(gray, {"faces": []})) == gray).all()
