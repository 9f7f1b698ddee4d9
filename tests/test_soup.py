"""Weight soups: averaging, BatchNorm re-estimation, the greedy rule, and `fer-hub soup`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from fer_hub import CnnModel2, CustomCNN, load_model
from fer_hub.errors import InputError
from fer_hub.preprocess import normalize
from fer_hub.training.batchnorm import refresh_batchnorm
from fer_hub.training.data import load_fer2013
from fer_hub.training.soup import average_weights, best_accuracy, greedy_soup


def quiet(*_):
    pass


def first_norm(model: CustomCNN) -> torch.nn.BatchNorm2d:
    return model.features[0][2]  # conv -> ReLU -> BatchNorm -> maxpool


_TRAINED: dict[tuple[int, int], CustomCNN] = {}


def trained_custom_cnn(data, steps: int = 5, seed: int = 0) -> CustomCNN:
    """A CustomCNN fitted for a few steps on the tiny dataset: clearly better than chance. Fitted
    once per module (`tiny_fer` is the same seeded dataset in every test); each caller gets a copy."""
    if (steps, seed) not in _TRAINED:
        _TRAINED[steps, seed] = _fit_custom_cnn(data, steps, seed)
    return copy.deepcopy(_TRAINED[steps, seed])


def _fit_custom_cnn(data, steps: int, seed: int) -> CustomCNN:
    torch.manual_seed(seed)
    model = CustomCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = normalize(data.x_train), data.y_train
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def perturbed(model, scale: float, seed: int):
    """A copy whose weights moved by `scale` times each tensor's spread: a fine-tune stand-in."""
    g = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * (p.std() if p.numel() > 1 else 1))
    return out


def test_average_weights_means_the_float_tensors_and_keeps_the_first_step_counter():
    torch.manual_seed(0)
    a, b = CustomCNN(), CustomCNN()
    first_norm(a).num_batches_tracked.fill_(7)
    first_norm(b).num_batches_tracked.fill_(3)
    first_norm(b).running_var.fill_(3.0)
    avg = average_weights([a, b])
    assert torch.allclose(avg["fc1.weight"], (a.fc1.weight + b.fc1.weight) / 2)
    assert torch.allclose(avg["features.0.2.running_var"], torch.full((64,), 2.0))
    assert int(avg["features.0.2.num_batches_tracked"]) == 7


def test_refresh_batchnorm_replaces_stale_statistics_with_the_training_faces_own(tiny_fer):
    data = load_fer2013(str(tiny_fer), log=quiet)
    torch.manual_seed(0)
    model = CustomCNN()
    first_norm(model).running_mean.fill_(123.0)  # stale: nothing like what conv1 produces
    n = len(data.x_train)
    refresh_batchnorm(model, data.x_train, faces=n, batch_size=n)
    assert not model.training and first_norm(model).momentum == 0.1  # eval mode, its momentum restored
    # one batch of every face, each mirrored or not: the first BatchNorm's mean is that batch's
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(n, generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    x = data.x_train[pick]
    x = torch.where(flips[:, None, None, None], x.flip(-1), x)
    with torch.no_grad():
        features = model.features[0][0](normalize(x)).relu()
    assert torch.allclose(first_norm(model).running_mean, features.mean((0, 2, 3)), atol=1e-5)
    # seeded: a second refresh gives the same statistics
    again = refresh_batchnorm(copy.deepcopy(model), data.x_train, faces=n, batch_size=n)
    assert torch.equal(first_norm(again).running_var, first_norm(model).running_var)


@pytest.mark.slow
def test_greedy_soup_keeps_fine_tunes_of_one_start_and_leaves_out_one_that_hurts(tiny_fer, tmp_path):
    data = load_fer2013(str(tiny_fer), log=quiet)
    base = trained_custom_cnn(data)
    folders = []
    for name, model in (
        ("tune-a", perturbed(base, 0.01, 1)),
        ("tune-b", perturbed(base, 0.01, 2)),
        ("stranger", perturbed(base, 20.0, 3)),  # its weights swamp any average it joins
    ):
        model.save_pretrained(tmp_path / name)
        folders.append(str(tmp_path / name))
    soup = greedy_soup(folders, data, log=quiet)
    by_name = {r["folder"].rsplit("/", 1)[-1]: r for r in soup.ingredients}
    assert soup.ingredients[0]["alone"] == max(r["alone"] for r in soup.ingredients)  # best first
    assert by_name["stranger"]["alone"] < by_name["tune-a"]["alone"]
    assert not by_name["stranger"]["kept"] and by_name["stranger"]["soup_after"] < soup.validation_accuracy
    assert by_name["tune-a"]["kept"] and by_name["tune-b"]["kept"]
    assert sorted(soup.kept) == sorted(folders[:2])
    # the soup is what it says: the kept weights' average, BatchNorm refreshed, scored as recorded
    kept = [load_model(f).float() for f in soup.kept]
    assert torch.allclose(soup.model.fc2.weight, (kept[0].fc2.weight + kept[1].fc2.weight) / 2, atol=1e-6)
    assert best_accuracy(soup.model, data.x_val, data.y_val)[0] == soup.validation_accuracy
    assert all("sha256" in r for r in soup.ingredients)


def test_greedy_soup_refuses_mixed_architectures_and_a_folder_named_twice(tiny_fer, tmp_path):
    data = load_fer2013(str(tiny_fer), log=quiet)
    CustomCNN().save_pretrained(tmp_path / "a")
    CnnModel2().save_pretrained(tmp_path / "b")
    with pytest.raises(InputError, match="one architecture"):
        greedy_soup([tmp_path / "a", tmp_path / "b"], data, log=quiet)
    with pytest.raises(InputError, match="twice"):
        greedy_soup([tmp_path / "a", tmp_path / "a"], data, log=quiet)
    with pytest.raises(InputError, match="at least one"):
        greedy_soup([], data, log=quiet)


@pytest.mark.slow
def test_a_soup_of_one_folder_is_its_model_with_batchnorm_statistics_re_estimated(tiny_fer, tmp_path):
    data = load_fer2013(str(tiny_fer), log=quiet)
    model = trained_custom_cnn(data)
    first_norm(model).running_mean.fill_(123.0)  # stale statistics, as an EMA leaves them
    model.save_pretrained(tmp_path / "one")
    soup = greedy_soup([tmp_path / "one"], data, log=quiet)
    assert (
        soup.kept == [str(tmp_path / "one")] and soup.ingredients[0]["soup_after"] == soup.validation_accuracy
    )
    weights = {k: v for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert all(torch.equal(soup.model.state_dict()[k], v) for k, v in weights.items())  # unchanged
    assert not torch.equal(first_norm(soup.model).running_mean, first_norm(model).running_mean)
    expected = refresh_batchnorm(load_model(tmp_path / "one").float(), data.x_train)
    assert torch.equal(first_norm(soup.model).running_var, first_norm(expected).running_var)


@pytest.mark.slow
def test_soup_command_writes_a_calibrated_folder_whose_card_names_every_ingredient(
    tiny_fer, tmp_path, capsys
):
    from fer_hub.cli import main as fer_hub_main
    from fer_hub.training.config import TrainConfig
    from fer_hub.training.folder import write_model_folder
    from fer_hub.training.loop import train

    start = write_model_folder(
        train(TrainConfig(dataset=str(tiny_fer), epochs=1, batch_size=32), log=quiet), tmp_path / "start"
    )
    tunes = []
    for seed in (1, 2):
        cfg = TrainConfig(dataset=str(tiny_fer), epochs=1, batch_size=32, lr=3e-4, init=str(start), seed=seed)
        tunes.append(str(write_model_folder(train(cfg, log=quiet), tmp_path / f"tune-{seed}")))
    out = tmp_path / "soup"
    assert fer_hub_main(["soup", str(out), *tunes, "--dataset", str(tiny_fer)]) == 0
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert "temperature" in config and "tta" in config  # calibrated where it was written
    assert {"validation", "test", "calibration"} <= set(metrics)
    assert [i["folder"] for i in metrics["soup"]["ingredients"]] != [] and len(
        metrics["soup"]["ingredients"]
    ) == 2
    assert load_model(out).predict_proba(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
    # readable by others, as a trained folder is (the staged folder it was written in was private)
    assert out.stat().st_mode & 0o777 == Path(tunes[0]).stat().st_mode & 0o777 and out.stat().st_mode & 0o055
    card = (out / "README.md").read_text()
    assert "weight soup" in card and "training_curves.png" not in card
    for tune in tunes:
        assert f"`{tune}`" in card  # the ingredients table
    assert card.count("--seed 1") == 1 and card.count("--seed 2") == 1  # how each was trained
    assert f"fer-hub soup {out}" in card
    # a folder that already holds something is refused before any work, and left as it was
    before = sorted(p.name for p in out.iterdir())
    assert fer_hub_main(["soup", str(out), *tunes, "--dataset", str(tiny_fer)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_soup_command_refuses_a_folder_that_is_not_a_model_before_loading_any_data(tmp_path, capsys):
    from fer_hub.cli import main as fer_hub_main

    CustomCNN().save_pretrained(tmp_path / "a")
    (tmp_path / "notes").mkdir()
    code = fer_hub_main(["soup", str(tmp_path / "out"), str(tmp_path / "a"), str(tmp_path / "notes")])
    assert code == 2
    err = capsys.readouterr().err
    assert "notes: no config.json" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
