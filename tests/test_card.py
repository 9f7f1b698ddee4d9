"""The model card: Hub metadata, every score in model-index, the recipe table and a reproduce
command that rebuilds the run, built from a shipped model's own records (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fer_hub.models import MODELS, SHIPPED_MODELS
from fer_hub.training.card import build_model_card
from fer_hub.training.config import CARD_SETTINGS, build_parser, config_from_args

CHECKPOINTS = Path(__file__).resolve().parents[1] / "space" / "checkpoints"


def records(name: str) -> tuple[dict, dict]:
    folder = CHECKPOINTS / name
    return json.loads((folder / "metrics.json").read_text()), json.loads(
        (folder / "training_args.json").read_text()
    )


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_card_carries_hub_metadata_and_every_score(name):
    metrics, config = records(name)
    text = str(build_model_card(metrics, config, MODELS[name]))
    meta = yaml.safe_load(text.split("---")[1])
    assert (meta["library_name"], meta["license"], meta["pipeline_tag"]) == (
        "fer-hub",
        "mit",
        "image-classification",
    )
    assert {"fer2013", "facial-expression-recognition"} <= set(meta["tags"])
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
    for key in CARD_SETTINGS:  # one row per setting the config marks for the card
        assert f"| `{key}` | {config[key]} |" in text
    (command,) = [line.split("`")[1] for line in text.splitlines() if line.startswith("Reproduce: `")]
    again = config_from_args(build_parser().parse_args(command.split()[2:]))
    for key in ("model", "recipe", "epochs", "rotation", "scale", "erase", "teacher", "seed", "save_dtype"):
        assert getattr(again, key) == config[key], key
