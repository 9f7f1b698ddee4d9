"""The two CNNs: architecture contract and the Hub round trip (offline, local folders)."""

from __future__ import annotations

import json

import pytest
import torch

from fer_hub import EMOTIONS, MODELS, CnnModel2, CustomCNN, load_model

PARAMS = {CustomCNN: 5_093_255, CnnModel2: 3_538_503}


@pytest.mark.parametrize("cls", [CustomCNN, CnnModel2])
def test_parameter_count_and_output_shape(cls):
    torch.manual_seed(0)
    model = cls()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[cls]
    assert model(torch.randn(3, 1, 48, 48)).shape == (3, 7)
    assert model.labels == list(EMOTIONS)


@pytest.mark.parametrize("cls", [CustomCNN, CnnModel2])
def test_every_parameter_gets_a_finite_gradient(cls):
    torch.manual_seed(0)
    model = cls().train()
    model(torch.randn(4, 1, 48, 48)).logsumexp(-1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_custom_cnn_has_no_activation_between_its_fc_layers():
    # As published: fc1 -> dropout -> fc2, so in eval mode the head is one affine map.
    torch.manual_seed(0)
    model = CustomCNN().eval()
    a, b = torch.randn(2, 9216), torch.randn(2, 9216)
    with torch.no_grad():
        lhs = model.forward_head(a + b) + model.forward_head(torch.zeros(2, 9216))
        rhs = model.forward_head(a) + model.forward_head(b)
    assert torch.allclose(lhs, rhs, atol=1e-4)


@pytest.mark.parametrize("cls", [CustomCNN, CnnModel2])
def test_save_and_from_pretrained_give_identical_logits(cls, tmp_path):
    torch.manual_seed(0)
    model = cls().eval()
    x = torch.randn(5, 1, 48, 48)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == cls.ARCHITECTURE and config["labels"] == list(EMOTIONS)
    loaded = cls.from_pretrained(tmp_path)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert type(load_model(tmp_path)) is cls


def test_loading_one_architecture_into_the_other_is_a_clear_error(tmp_path):
    CustomCNN().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="describes a 'custom-cnn' model.*CustomCNN"):
        CnnModel2.from_pretrained(tmp_path)


def test_weights_that_do_not_match_the_config_fail_strictly(tmp_path):
    # config says 7 classes, weights have 5: the mixin's default strict=False would load garbage.
    CustomCNN(num_classes=5, labels=list(EMOTIONS[:5])).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(num_classes=7, labels=list(EMOTIONS))
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match CustomCNN"):
        CustomCNN.from_pretrained(tmp_path)


def test_float16_weights_load_into_a_float32_model(tmp_path):
    torch.manual_seed(0)
    model = CnnModel2().eval()
    model.half().save_pretrained(tmp_path)
    loaded = CnnModel2.from_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.float()(x), atol=1e-2)


def test_load_model_reports_missing_and_unknown_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"architecture": "resnet"}')
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a model folder nor a Hub repo id"):
        load_model(tmp_path / "nope")


def test_registry_names_match_architectures():
    assert {name: cls.ARCHITECTURE for name, cls in MODELS.items()} == {n: n for n in MODELS}


def test_uncached_hub_repo_offline_says_offline_and_names_the_repo(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        FileNotFoundError, match=r"'some-org/never-cached' is not in the local cache and HF_HUB_OFFLINE"
    ):
        load_model("some-org/never-cached", cache_dir=tmp_path)


def test_predict_proba_needs_no_graph_and_matches_the_calibrated_softmax():
    torch.manual_seed(0)
    model = CustomCNN(temperature=2.0).eval()
    x = torch.randn(3, 1, 48, 48)
    p = model.predict_proba(x)
    assert not p.requires_grad and p.numpy().shape == (3, 7)
    torch.testing.assert_close(p, (model(x) / 2.0).softmax(-1).detach())


def test_a_checkpoint_with_nan_weights_is_refused_naming_its_folder(nan_checkpoint):
    folder = nan_checkpoint
    with pytest.raises(
        ValueError,
        match=r"broken: the weights hold NaN or infinite values \(1 of \d+ tensors, e.g. fc1.weight\)",
    ):
        load_model(folder)


def test_a_truncated_safetensors_file_is_refused_naming_the_file(tmp_path):
    CustomCNN().save_pretrained(tmp_path / "cut")
    weights = tmp_path / "cut" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cut: model.safetensors is damaged or truncated"):
        load_model(tmp_path / "cut")
