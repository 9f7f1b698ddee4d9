"""fer_hub: facial-expression recognition (FER-2013) that you can train, share and use.

    from fer_hub import Predictor
    Predictor.from_pretrained("space/checkpoints/cnn-model2")("photo.jpg")

This package is the inference side (models, faces, Predictor, video, ONNX); `fer_hub.training`
is the training wing, which inference never imports (`from fer_hub.training import train,
TrainConfig`). README, "How the code is laid out", maps the modules.
"""

from . import _moved
from .labels import EMOTIONS
from .models import MODELS, CnnModel2, CustomCNN, load_model
from .preprocess import normalize, preprocess, to_gray48

__all__ = [
    "EMOTIONS",
    "MODELS",
    "CustomCNN",
    "CnnModel2",
    "load_model",
    "preprocess",
    "normalize",
    "to_gray48",
    "Predictor",
    "load_fer2013",
]
__version__ = "0.1.0"
_moved.install()  # `import fer_hub.calibration` and the other old names of the training wing


def __getattr__(name: str):
    # Lazy: `import fer_hub` stays light for inference; datasets and OpenCV load on first use.
    if name == "Predictor":
        from .predict import Predictor

        return Predictor
    if name == "load_fer2013":
        from .training.data import load_fer2013

        return load_fer2013
    raise AttributeError(f"module 'fer_hub' has no attribute {name!r}")
