"""The training wing: everything only training needs, apart from inference (which never imports
it, so `fer_hub.Predictor` runs without `datasets`).

    config.py       TrainConfig, the recipes, and the command line made from them
    data.py         FER-2013 from the Hub or a local folder, decoded once and cached
    augment.py      batch augmentation on the training device
    ema.py          the weight average that is validated and shipped
    loop.py         train(): setup, the epoch loop, the final report
    state.py        the resumable training state
    evaluate.py     accuracy, macro-F1, confusion matrix
    calibration.py  temperature, class bias and the "uncertain" threshold (maths only)
    card.py         the model card
    folder.py       writing (and recalibrating) a model folder: the one writer
    plots.py        training curves, confusion matrices, reliability diagram
    hub.py          pushing a folder to the Hub
    cli.py          train_hub.py / fer-train / fer-hub train, and fer-hub calibrate
"""

from __future__ import annotations

from .config import RECIPES, TrainConfig
from .data import load_fer2013
from .loop import train

__all__ = ["TrainConfig", "RECIPES", "train", "load_fer2013"]
