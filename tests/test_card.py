"""The model card and config.json: Hub metadata, every score in model-index, the recipe table
and a reproduce command that rebuilds the run, built from a shipped model's own records (no
training)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from fer_hub.models import MODELS, SHIPPED_MODELS, CustomCNN, load_model
from fer_hub.training.card import build_model_card
from fer_hub.training.config import CARD_SETTINGS, TrainConfig, build_parser, config_from_args
from fer_hub.training.data import DEFAULT_DATASET
from fer_hub.training.folder import refresh_model_card, write_model_folder

CHECKPOINTS = Path(__file__).resolve().parents[1] / "space" / "checkpoints"
# What a Hub user filters models on; every fer_hub model's card and config.json carry it.
LIBRARY = {"library_name": "fer-hub", "license": "mit", "pipeline_tag": "image-classification"}
TAGS = {"facial-expression-recognition", "fer2013", "image-classification", "pytorch_model_hub_mixin"}
HUB_KEYS = (*LIBRARY, "tags", "datasets")


def records(name: str) -> tuple[dict, dict]:
    folder = CHECKPOINTS / name
    return json.loads((folder / "metrics.json").read_text()), json.loads(
        (folder / "training_args.json").read_text()
    )


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def card_meta(name: str, **config_changes) -> dict:
    metrics, config = records(name)
    return front_matter(str(build_model_card(metrics, {**config, **config_changes}, MODELS[name])))


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_card_yaml_names_library_task_license_tags_data_and_metrics(name):
    meta = card_meta(name)
    assert {k: meta[k] for k in LIBRARY} == LIBRARY
    assert TAGS <= set(meta["tags"])
    assert meta["datasets"] == [DEFAULT_DATASET]
    assert meta["metrics"] == ["accuracy", "f1"]


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_model_index_holds_one_result_per_split_on_the_hub_dataset(name):
    metrics, _ = records(name)
    (entry,) = card_meta(name)["model-index"]
    assert entry["name"] == f"fer_hub-{name}"
    assert [r["dataset"] for r in entry["results"]] == [
        {"name": "FER-2013", "type": DEFAULT_DATASET, "split": split} for split in ("validation", "test")
    ]
    for result, split in zip(entry["results"], ("validation", "test")):
        assert result["task"] == {"type": "image-classification", "name": "Facial expression recognition"}
        by_name = {m["name"]: m for m in result["metrics"]}
        assert (by_name["Accuracy"]["type"], by_name["Accuracy"]["value"]) == (
            "accuracy",
            round(metrics[split]["accuracy"], 4),
        )
        macro_f1 = by_name["Macro F1"]
        assert (macro_f1["type"], macro_f1["config"], macro_f1["value"]) == (
            "f1",
            "macro",
            round(metrics[split]["macro_f1"], 4),
        )


def test_a_run_on_a_hub_dataset_is_credited_to_that_dataset():
    meta = card_meta("custom-cnn", dataset="some-org/fer2013-copy")
    assert meta["datasets"] == ["some-org/fer2013-copy"]
    assert {r["dataset"]["type"] for r in meta["model-index"][0]["results"]} == {"some-org/fer2013-copy"}


def test_a_run_on_a_local_folder_is_credited_to_the_default_hub_copy(tmp_path):
    local = tmp_path / "fer"
    local.mkdir()
    for dataset in ("../shared/fer2013", str(local)):
        assert card_meta("custom-cnn", dataset=dataset)["datasets"] == [DEFAULT_DATASET]


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_shipped_card_yaml_is_what_the_card_builder_writes_now(name):
    shipped = front_matter((CHECKPOINTS / name / "README.md").read_text())
    assert shipped == card_meta(name)


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_shipped_config_json_carries_the_cards_hub_metadata(name):
    config = json.loads((CHECKPOINTS / name / "config.json").read_text())
    card = front_matter((CHECKPOINTS / name / "README.md").read_text())
    assert {k: config[k] for k in HUB_KEYS} == {k: card[k] for k in HUB_KEYS}


def test_a_saved_models_config_json_carries_the_library_metadata_and_still_loads(tmp_path):
    CustomCNN(dropout=0.1).save_pretrained(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert {k: config[k] for k in LIBRARY} == LIBRARY and TAGS <= set(config["tags"])
    assert config["architecture"] == "custom-cnn" and config["dropout"] == 0.1
    # the metadata is not a constructor argument: loading ignores it, saving again keeps it
    loaded = load_model(tmp_path / "a")
    loaded.save_pretrained(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text()) == config
    card = front_matter((tmp_path / "a" / "README.md").read_text())
    assert {k: card[k] for k in (*LIBRARY, "tags")} == {k: config[k] for k in (*LIBRARY, "tags")}


def test_a_written_model_folder_has_the_same_hub_metadata_in_config_json_and_card(tmp_path):
    from types import SimpleNamespace

    metrics, config = records("custom-cnn")
    history = json.loads((CHECKPOINTS / "custom-cnn" / "history.json").read_text())
    cfg = TrainConfig(**{**config, "dataset": "some-org/fer2013-copy", "output": str(tmp_path / "out")})
    run = SimpleNamespace(model=CustomCNN(), history=history, metrics=metrics, config=cfg)
    out = write_model_folder(run, tmp_path / "out")
    config_json = json.loads((out / "config.json").read_text())
    card = front_matter((out / "README.md").read_text())
    assert {k: config_json[k] for k in HUB_KEYS} == {k: card[k] for k in HUB_KEYS}
    assert config_json["datasets"] == ["some-org/fer2013-copy"] and config_json["library_name"] == "fer-hub"


def test_refreshing_a_card_updates_config_metadata_but_not_the_weights(tmp_path):
    folder = tmp_path / "cnn-model2"
    shutil.copytree(CHECKPOINTS / "cnn-model2", folder)
    config_file = folder / "config.json"
    fresh = json.loads(config_file.read_text())
    old = {k: v for k, v in fresh.items() if k not in HUB_KEYS}  # as written before the metadata
    config_file.write_text(json.dumps(old))
    (folder / "README.md").write_text("stale")
    weights = (folder / "model.safetensors").read_bytes()
    refresh_model_card(folder)
    assert json.loads(config_file.read_text()) == fresh
    assert (folder / "model.safetensors").read_bytes() == weights
    assert front_matter((folder / "README.md").read_text()) == card_meta("cnn-model2")


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_card_carries_every_score(name):
    metrics, config = records(name)
    text = str(build_model_card(metrics, config, MODELS[name]))
    meta = front_matter(text)
    scores = {
        (r["dataset"]["split"], m["name"]): m["value"]
        for r in meta["model-index"][0]["results"]
        for m in r["metrics"]
    }
    for split in ("validation", "test"):
        assert scores[(split, "Accuracy")] == round(metrics[split]["accuracy"], 4)
        assert scores[(split, "Accuracy (flip TTA)")] == round(metrics[split]["accuracy_tta"], 4)
        assert scores[(split, "Macro F1")] == round(metrics[split]["macro_f1"], 4)
    assert "Not for decisions about people" in text and "![confusion matrix, test]" in text


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_recipe_table_and_reproduce_command_describe_the_run(name):
    metrics, config = records(name)
    text = str(build_model_card(metrics, config, MODELS[name]))
    # a setting newer than the run shows what the run used: the default
    recorded = {**asdict(TrainConfig()), **config}
    for key in CARD_SETTINGS:  # one row per setting the config marks for the card
        assert f"| `{key}` | {recorded[key]} |" in text
    (command,) = [line.split("`")[1] for line in text.splitlines() if line.startswith("Reproduce: `")]
    again = config_from_args(build_parser().parse_args(command.split()[2:]))
    for key in ("model", "recipe", "epochs", "rotation", "scale", "erase", "teacher", "seed", "save_dtype"):
        assert getattr(again, key) == config[key], key
