"""The model card (README.md) of a trained model folder, generated from the run's own numbers.

The YAML header carries license, library, tags, dataset, metrics and `model-index` eval results,
so the Hub shows the scores on the model page.

The Hub's newer `.eval_results/*.yaml` format is not written: it only accepts scores on a
dataset registered as a Benchmark (with an `eval.yaml` naming its tasks), which no FER-2013 copy
on the Hub is; `model-index` is what the model page shows for it.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import asdict

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..labels import EMOTIONS
from ..models import PROJECT_URL, library_metadata
from .config import CARD_SETTINGS, TrainConfig, folders, reproduce_command
from .data import DEFAULT_DATASET
from .evaluate import accuracy_with_interval

__all__ = ["build_model_card", "hub_metadata", "LIMITATIONS"]

_DATASET_NAME = "FER-2013"  # its display name in model-index

LIMITATIONS = """\
- **Expressions are not emotions.** The model labels the visible configuration of a face; it
  cannot tell what anyone feels, and posed, masked or culturally specific expressions fool it.
- **Data.** FER-2013 was scraped from web image searches in 2013: 48x48 grayscale, low
  resolution, noisy labels (human accuracy is estimated at about 65%), and a skewed demographic
  mix (age, skin tone and gender are not balanced and were never annotated). Accuracy on
  under-represented groups is unknown and likely lower. `disgust` has ~1.5% of the images and is
  the weakest class.
- **Inputs.** Trained on tight, roughly frontal face crops. Profile views, small or blurred
  faces, strong lighting and occlusions degrade it; the face detector misses some faces.
- **Not for decisions about people.** Do not use it for hiring, policing, surveillance,
  health, insurance, education or any other decision that affects a person. Suitable uses:
  demos, teaching, research on the model itself, and interactive apps where the user sees and
  controls the result.
"""


def _hub_dataset(dataset: str) -> str:
    """The Hub dataset id a run's `dataset` setting is credited to.

    A Hub id is itself. A local folder is a copy of FER-2013 laid out like a Hub dataset repo
    (see .data); the Hub links a model to its data only by id, so it is credited to the copy the
    loader defaults to. The card's "Training data" section still names the folder."""
    is_hub_id = (
        dataset.count("/") == 1 and not dataset.startswith((".", "/", "~")) and not os.path.isdir(dataset)
    )
    return dataset if is_hub_id else DEFAULT_DATASET


def hub_metadata(dataset: str) -> dict:
    """What the Hub files and filters a trained model under (library, license, task, tags and
    training data): the card's YAML and the folder's config.json both carry it."""
    return {**library_metadata(), "datasets": [_hub_dataset(dataset)]}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _augmentation_text(config: dict) -> str:
    aug = [f"horizontal flip, rotation +-{config['rotation']:g} degrees"]
    if config["scale"]:
        aug.append(f"zoom x{1 - config['scale']:g} to x{1 + config['scale']:g}")
    aug.append("random crop 48 with padding 4, brightness and contrast jitter 0.2")
    if config["erase"]:
        aug.append(f"random erasing with probability {config['erase']:g}")
    if config.get("degrade"):
        aug.append(f"one of blur, noise, low resolution or low light with probability {config['degrade']:g}")
    if config.get("mixup"):
        aug.append(f"mixup with Beta({config['mixup']:g}, {config['mixup']:g}) weights")
    selection = (
        f"an exponential moving average of the weights (decay {config['ema']:g}) is what is "
        "validated, selected and shipped"
        if config["ema"]
        else "the weights of the best epoch on validation are shipped"
    )
    stopping = f"early stopping (patience {config['patience']}); " if config.get("patience") else ""
    if config.get("logit_adjust"):
        stopping += f"logit-adjusted (tau {config['logit_adjust']:g} times the log class frequency); "
    if config.get("init"):
        stopping += f"fine-tuned from the weights of `{config['init']}`; "
    if teachers := folders(config.get("teacher")):
        named = ", ".join(f"`{t}`" for t in teachers)
        whose = "its" if len(teachers) == 1 else f"the mean of the {len(teachers)} teachers'"
        stopping += (
            f"distilled from {named} (weight {config['distill']:g}, temperature "
            f"{config['distill_temperature']:g}, {whose} flip-averaged soft targets); "
        )
    return (
        f"Augmentation (per image, in batch on the device): {', '.join(aug)}. Cross-entropy with "
        f"label smoothing {config['label_smoothing']:g}; {stopping}{selection}."
    )


def _calibration_text(cal: dict | None) -> str:
    if not cal:
        return (
            "\nProbabilities are a plain softmax (not calibrated; `fer-hub calibrate "
            "FOLDER` fits a temperature).\n"
        )
    uncertain = (
        f"A face whose calibrated top probability is below {cal['uncertain_below']:.3f} is reported as "
        f'`"uncertain": true`: the smallest threshold at which the faces kept on validation are '
        f"{cal['target_accuracy']:.0%} accurate (validation coverage {cal['validation']['coverage']:.1%})."
    )
    text = f"""
## Calibration and "uncertain"

{textwrap.fill(f"{_scaling_text(cal)} {uncertain}", 95, break_on_hyphens=False)}
"""
    if cal.get("sharpness_range"):
        low, high = cal["sharpness_range"]
        text += f"""
A face whose crop's sharpness (`fer_hub.quality.sharpness`: the log of its Laplacian's variance
over its pixels' variance) is outside [{low:.2f}, {high:.2f}], the range of all but the
{cal["unfamiliar_share"]:.0%} bluntest and noisiest validation faces, is unlike the faces the model
learnt from (out of focus, shrunk from a few pixels, buried in noise): it is reported as
`"unfamiliar": true`, and uncertain too, however confident its probabilities look. The threshold
above is fitted on the faces inside the range. The range catches blur, low resolution and heavy
noise; it does not see occlusion, poor light or a face that is not a face.
"""
    t = cal.get("test")
    if t:
        kept = f", and {t['accuracy_kept']:.1%} of those are right" if t["accuracy_kept"] is not None else ""
        odd = (
            f" {t['unfamiliar']:.1%} of the test faces are unfamiliar." if cal.get("sharpness_range") else ""
        )
        text += f"""
| on test | before (softmax) | after ({"T and b" if cal.get("class_bias") else f"T = {cal['temperature']:.3f}"}) |
|---|---|---|
| expected calibration error ({cal["ece_bins"]} bins, top label) | {t["ece_before"]:.4f} | {t["ece_after"]:.4f} |
| negative log-likelihood | {t["nll_before"]:.4f} | {t["nll_after"]:.4f} |

On test, {t["coverage"]:.1%} of faces are not flagged uncertain{kept}.{odd}

![reliability diagram and coverage-accuracy curve](reliability_test.png)
"""
    return text


def _scaling_text(cal: dict) -> str:
    """How the folder's probabilities are calibrated: the temperature, and the class bias when
    cross-validation on validation kept one."""
    split, cv = cal["fitted_on"], cal.get("class_bias_cross_validation")
    if not cal.get("class_bias"):
        kept = ""
        if cv:
            before, after = cv["temperature"], cv["temperature_and_bias"]
            kept = (
                f" A bias per class was tried and not kept: cross-validated over {cv['folds']} folds "
                f"of {split}, it moved the negative log-likelihood {before['nll']:.4f} -> "
                f"{after['nll']:.4f} and macro-F1 {before['macro_f1']:.3f} -> {after['macro_f1']:.3f}, "
                f"and is kept only when it lowers the first without lowering the second."
            )
        return (
            f"Probabilities are `softmax(logits / T)` with T = {cal['temperature']:.3f}, fitted on the "
            f"{split} split by minimizing the negative log-likelihood (temperature scaling; it changes "
            f"no prediction).{kept}"
        )
    bias = ", ".join(f"{name} {value:+.3f}" for name, value in cal["class_bias"].items())
    text = (
        f"Probabilities are `softmax(logits / T + b)` with T = {cal['temperature']:.3f} and a bias per "
        f"class b ({bias}), fitted together on the {split} split by minimizing the negative "
        f"log-likelihood (bias-corrected temperature scaling). The bias moves labels: it undoes "
        f"the class shares the network learnt too well."
    )
    if cv:
        before, after = cv["temperature"], cv["temperature_and_bias"]
        text += (
            f" It is kept because it predicts {split} faces it was not fitted on better "
            f"({cv['folds']}-fold cross-validation: negative log-likelihood {before['nll']:.4f} -> "
            f"{after['nll']:.4f}, macro-F1 {before['macro_f1']:.3f} -> {after['macro_f1']:.3f}, "
            f"accuracy {before['accuracy']:.2%} -> {after['accuracy']:.2%})."
        )
    return text


def _card_data(model_name: str, metrics: dict, dataset: str) -> ModelCardData:
    """The card's YAML: what the Hub filters on, and every score as `model-index` results, one
    result per split."""
    meta = hub_metadata(dataset)
    eval_results = [
        EvalResult(
            task_type=meta["pipeline_tag"],
            task_name="Facial expression recognition",
            dataset_type=meta["datasets"][0],
            dataset_name=_DATASET_NAME,
            dataset_split=split,
            metric_type=metric_type,
            metric_name=name,
            metric_value=round(metrics[split][key], 4),
            metric_config="macro" if key == "macro_f1" else None,
        )
        for split in ("validation", "test")
        if split in metrics
        for metric_type, key, name in (
            ("accuracy", "accuracy", "Accuracy"),
            ("accuracy", "accuracy_tta", "Accuracy (flip TTA)"),
            ("f1", "macro_f1", "Macro F1"),
        )
    ]
    return ModelCardData(
        model_name=model_name, **meta, metrics=["accuracy", "f1"], eval_results=eval_results or None
    )


def _results_tables(metrics: dict) -> tuple[str, str, str]:
    """(rows per split, the split of the per-class table, the per-class rows)."""
    rows = "\n".join(
        f"| {split} | {metrics[split]['n']:,} | {accuracy_with_interval(metrics[split]['accuracy'], metrics[split]['n'])} | "
        f"{accuracy_with_interval(metrics[split]['accuracy_tta'], metrics[split]['n'])} | {metrics[split]['macro_f1']:.4f} | "
        f"{metrics[split]['macro_f1_tta']:.4f} |"
        for split in ("validation", "test")
        if split in metrics
    )
    per_class_split = "test" if "test" in metrics else "validation"
    per_class = "\n".join(
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']:,} |"
        for name, m in metrics[per_class_split]["per_class"].items()
    )
    return rows, per_class_split, per_class


def _recipe_text(metrics: dict, config: dict) -> tuple[str, str, str]:
    """(the augmentation paragraph, the settings table's rows, the reproduce command)."""
    # .get: folders written before a setting existed say what that run used, the default
    defaults = asdict(TrainConfig())
    recipe = "\n".join(f"| `{k}` | {config.get(k, defaults.get(k))} |" for k in CARD_SETTINGS)
    augmentation = _augmentation_text({**defaults, **config})
    for key, role in (("teacher", "The teacher"), ("init", "The starting weights")):
        # a record per teacher; one dict in folders made before several teachers were allowed
        sources = metrics.get(key) or []
        sources = [sources] if isinstance(sources, dict) else sources
        for i, source in enumerate(sources):
            known = [source.get("architecture", "")]
            if "validation_accuracy" in source:
                known.append(f"validation accuracy {_pct(source['validation_accuracy'])}")
            if "sha256" in source:
                known.append(f"model.safetensors sha256 `{source['sha256'][:16]}`")
            name = f"{role} {i + 1} (`{source['folder']}`)" if len(sources) > 1 else role
            augmentation += f" {name}, as read when this run started: {', '.join(k for k in known if k)}."
    return augmentation, recipe, reproduce_command({**defaults, **config})


def _speed_settings(metrics: dict) -> str:
    """', bf16 autocast, torch.compile' as the run resolved them (older runs did not record it)."""
    used = [
        name for key, name in (("bf16", "bf16 autocast"), ("compiled", "torch.compile")) if metrics.get(key)
    ]
    return "".join(f", {name}" for name in used)


def _run_text(metrics: dict) -> str:
    return f"""Best epoch on validation: {metrics["best_epoch"]} of {metrics["epochs_run"]} run. Test was
evaluated once, after model selection. Hardware: {metrics["hardware"]} (torch
{metrics["torch_version"]}{_speed_settings(metrics)}); training loop {metrics["train_seconds"]:.1f} s,
{metrics["seconds_per_epoch"]:.2f} s and {metrics["images_per_second"]:,.0f} images/s per epoch."""


def _soup_text(soup: dict, metrics: dict) -> str:
    """How a weight soup was made: the rule, and every ingredient it read, kept or not."""
    ingredients = soup["ingredients"]
    made = f"""Test was evaluated once, after the choice. Made on {metrics["hardware"]} (torch {metrics["torch_version"]})."""
    if len(ingredients) == 1:
        only = ingredients[0]
        return f"""The weights of the model below, unchanged, with their BatchNorm statistics re-estimated
on {soup["batchnorm_faces"]:,} training faces: the running statistics training kept were averaged
along with the weights by its weight average (EMA), so they described none of the weights. {made}

| model | model.safetensors sha256 | validation, statistics re-estimated | |
|---|---|---|---|
| `{only["folder"]}` | `{only.get("sha256", "?")[:16]}` | {_pct(only["alone"])} | |"""
    rows = "\n".join(
        f"| `{i['folder']}` | `{i.get('sha256', '?')[:16]}` | {_pct(i['alone'])} | {_pct(i['soup_after'])} | "
        f"{'kept' if i['kept'] else 'left out'} |"
        for i in ingredients
    )
    kept = sum(i["kept"] for i in ingredients)
    return f"""A weight soup (Wortsman et al. 2022): the average of the weights of {kept} of the
{len(ingredients)} models below (one model and fine-tunes of it), added best first and each kept only when validation
accuracy (with the better of plain and flip-TTA scoring) did not drop; BatchNorm statistics
re-estimated on {soup["batchnorm_faces"]:,} training faces for every candidate. {made}

| ingredient | model.safetensors sha256 | validation alone | soup after adding it | |
|---|---|---|---|---|
{rows}"""


def build_model_card(metrics: dict, config: dict, model_cls: type) -> ModelCard:
    """Model card for one training run: `metrics` as written to metrics.json, `config` the
    TrainConfig as a dict, `model_cls` the trained class."""
    model_name = f"fer_hub-{config['model']}"
    data = _card_data(model_name, metrics, config["dataset"])
    repo = config.get("repo_id") or "ORG/NAME"
    dataset = config["dataset"]
    rows, per_class_split, per_class = _results_tables(metrics)
    splits = [s for s in ("validation", "test") if s in metrics]
    figures = "".join(f"![confusion matrix, {s}](confusion_matrix_{s}.png)\n" for s in splits)
    augmentation, recipe, command = _recipe_text(metrics, config)
    notes = "".join(f"- {n}\n" for n in metrics.get("data_notes", []))
    interrupted = (
        "\n**This run was interrupted (Ctrl-C); the weights are the best epoch before it.**\n"
        if metrics.get("interrupted")
        else ""
    )
    calibration = _calibration_text(metrics.get("calibration"))
    if soup := metrics.get("soup"):
        made, curves = _soup_text(soup, metrics), ""
        augmentation = "The best ingredient's recipe: " + augmentation
        steps = [f"`{i['command']}`" for i in soup["ingredients"] if i.get("command")]
        reproduce = "Reproduce: train the ingredients,\n\n" + "".join(f"- {c}\n" for c in steps)
        reproduce += f"\nthen make the soup: `{soup['command']}`"
    else:
        made, curves = _run_text(metrics), "![training curves](training_curves.png)"
        reproduce = f"Reproduce: `{command}`"

    text = f"""---
{data.to_yaml()}
---

# {model_name}: facial-expression recognition on FER-2013

`{model_cls.__name__}` ({metrics["parameters"]:,} parameters) classifies a 48x48 grayscale face
into one of seven expressions, in this order: {", ".join(EMOTIONS)}. Trained with
[fer_hub]({PROJECT_URL}); the label names travel in `config.json`.
{interrupted}
## Use

```python
from fer_hub import Predictor
predictor = Predictor.from_pretrained("{repo}")   # or a local folder
predictor("photo.jpg")   # finds faces; per face: box, label, all 7 probabilities
```

or the bare network (input: grayscale in [0, 1], normalized with mean 0.5 and std 0.5):

```python
from fer_hub import {model_cls.__name__}, preprocess
model = {model_cls.__name__}.from_pretrained("{repo}")
probs = model.predict_proba(preprocess(face_crop_pil_image))   # (1, 7) calibrated, model.labels order
```

## Results

{made}

| split | images | accuracy (95% interval) | accuracy, flip TTA (95% interval) | macro-F1 | macro-F1 (TTA) |
|---|---|---|---|---|---|
{rows}

Per class on {per_class_split}:

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

{figures}{curves}
{calibration}
## Training data

FER-2013 (Goodfellow et al., 2013), loaded with `datasets.load_dataset({dataset!r})`:
{metrics["n_train"]:,} training, {metrics["n_validation"]:,} validation and
{metrics["n_test"] or 0:,} test images. Labels were matched to the seven classes by name.
{notes}
## Training recipe

{augmentation}

| setting | value |
|---|---|
{recipe}

{reproduce}

## Intended use and limitations

{LIMITATIONS}"""
    return ModelCard(text)
