"""The two FER-2013 CNNs, each a plain nn.Module that saves to and loads from the Hugging Face Hub.

Input: float tensor (B, 1, 48, 48), grayscale scaled to [0, 1] then normalized with mean 0.5 and
std 0.5 (see `fer_hub.preprocess`). Output: logits (B, 7) in the order of `model.labels`, which is
`EMOTIONS` unless a caller asked otherwise. The constructor arguments are the whole config: the
mixin writes them to config.json, so `from_pretrained` needs no training code.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn

from .errors import AccessError, InputError, NotFoundError
from .labels import EMOTIONS
from .scaling import bias_vector, calibrated_probabilities, check_class_bias

__all__ = [
    "CustomCNN",
    "CnnModel2",
    "MODELS",
    "SHIPPED_MODELS",
    "model_file",
    "DEFAULT_MODEL",
    "load_model",
    "library_metadata",
    "PROJECT_URL",
]

# The models this project ships (space/checkpoints/<name>), by architecture name. The first is the
# default of the command line, the Space and the benchmarks: the more accurate on validation
# (tests/test_checkpoints.py holds it to that).
SHIPPED_MODELS = ("cnn-model2", "custom-cnn")
DEFAULT_MODEL = SHIPPED_MODELS[0]

PROJECT_URL = "https://github.com/fer-hub/fer_hub"

_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name | default("fer_hub facial-expression CNN", true) }}

A small CNN that classifies a 48x48 grayscale face into one of seven expressions:
angry, disgust, fear, happy, neutral, sad, surprise. Built with [fer_hub]({{ repo_url }}).

```python
from fer_hub import Predictor
predictor = Predictor.from_pretrained("{{ repo_id | default("ORG/NAME", true) }}")
print(predictor("photo.jpg"))  # faces found, boxes, all 7 probabilities
```

Expressions are not emotions; do not use this model for decisions about people.
"""


class _FERModel(
    nn.Module,
    PyTorchModelHubMixin,
    # What the Hub files and filters a model under, stated here only: library_metadata() hands it
    # to the training card and to config.json. "fer-hub" is the PyPI name (Hub library ids are
    # kebab-case); MIT is the repository's LICENSE.
    library_name="fer-hub",
    tags=["image-classification", "facial-expression-recognition", "fer2013", "pytorch"],
    license="mit",
    pipeline_tag="image-classification",
    repo_url=PROJECT_URL,
    model_card_template=_CARD_TEMPLATE,
):
    """Shared Hub behaviour: strict loading, an architecture check with a clear error, and the
    library's Hub metadata in config.json beside the constructor arguments."""

    ARCHITECTURE = ""  # set by each subclass; recorded in config.json as "architecture"

    def save_pretrained(
        self, save_directory: str | Path, *, config: dict | None = None, **kwargs
    ) -> str | None:
        # The mixin writes only the constructor arguments; a config.json fetched on its own (the
        # first file load_model reads) should still say which library and task it belongs to.
        # from_pretrained passes only constructor arguments on, so the extra keys never reach
        # __init__. push_to_hub saves through here too.
        arguments = self._hub_mixin_config if config is None else config
        return super().save_pretrained(
            save_directory, config={**(arguments or {}), **library_metadata()}, **kwargs
        )

    def _set_config(
        self,
        architecture: str,
        num_classes: int,
        labels: list[str],
        temperature: float,
        uncertain_below: float,
        tta: bool,
        int8: bool = False,
        sharpness_range: list[float] | None = None,
        class_bias: dict[str, float] | None = None,
    ) -> None:
        if architecture != self.ARCHITECTURE:
            other = MODELS.get(architecture)
            hint = f"load it with fer_hub.{other.__name__}" if other else "it is not a fer_hub model"
            raise InputError(
                f"config.json describes a {architecture!r} model but {type(self).__name__} "
                f"({self.ARCHITECTURE!r}) was asked to load it; {hint} or with fer_hub.load_model"
            )
        if not temperature > 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        if len(labels) != num_classes:
            raise InputError(f"labels has {len(labels)} names but num_classes={num_classes}")
        self.labels = list(labels)
        # Calibration, fitted on validation after training (fer_hub.training.calibration): probabilities
        # are softmax(logits / temperature + class_bias), the bias by label name (None: none,
        # as in folders calibrated before it existed; `fer_hub.scaling`); a face whose top
        # probability is below `uncertain_below` is reported as uncertain. Defaults: plain
        # softmax, never uncertain.
        self.temperature = float(temperature)
        self.class_bias = check_class_bias(class_bias, self.labels)
        self.uncertain_below = float(uncertain_below)
        # Also fitted on validation: a face whose crop's sharpness (`fer_hub.quality.sharpness`)
        # is outside [low, high], the range of all but the bluntest and noisiest validation
        # faces, is unlike the faces the model learnt from (blurred, shrunk from a few pixels,
        # buried in noise), and is reported as unfamiliar, and so uncertain, however confident
        # its probabilities look. None (folders calibrated before it existed): off.
        if sharpness_range is not None and len(sharpness_range) != 2:
            raise InputError(f"sharpness_range must be [low, high], got {sharpness_range!r}")
        self.sharpness_range = None if sharpness_range is None else [float(v) for v in sharpness_range]
        # The default scoring, chosen on validation with the temperature and threshold above,
        # which are fitted for it: True scores a face by the mean of its logits and its mirror
        # image's (flip TTA).
        self.tta = bool(tta)
        # Also chosen on validation (`fer-hub calibrate`): True when the folder's int8 export
        # (fer_hub.onnx_model.INT8_FILE) scores as well as the float weights there, at about
        # twice the speed; a CPU Predictor then classifies with it, and the calibration above
        # is fitted on its logits.
        self.int8 = bool(int8)

    def scored_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) as the model's default scoring gives them: with `tta`, the
        mean of each face's and its mirror image's, in one batch."""
        return tta_logits(self, x) if self.tta else self(x)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities (B, num_classes) in `self.labels` order, with the
        model's default scoring, without a graph (ready for `.numpy()`)."""
        return calibrated_probabilities(
            self.scored_logits(x), self.temperature, bias_vector(self.class_bias, self.labels)
        )

    @classmethod
    def _from_pretrained(cls, *, model_id: str, strict: bool = True, **kwargs):
        # The mixin defaults to strict=False, which silently loads weights into a mismatched
        # architecture. Always load strictly, and say which folder did not match.
        from safetensors import SafetensorError

        try:
            # The mixin prints "Loading weights from local directory" to stdout, where it would
            # corrupt the CSV that `fer-hub predict` writes there.
            with contextlib.redirect_stdout(io.StringIO()):
                model = super()._from_pretrained(model_id=model_id, strict=True, **kwargs)
        except SafetensorError as e:  # truncated or overwritten: the header no longer parses
            raise InputError(
                f"{model_id}: model.safetensors is damaged or truncated ({e}); download or copy it again"
            ) from None
        except RuntimeError as e:
            raise InputError(
                f"weights in {model_id!r} do not match {cls.__name__} with this config: {e}"
            ) from e
        check_finite(model, model_id)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def library_metadata() -> dict:
    """library_name, license, pipeline_tag and tags as the mixin writes them into a card's YAML
    (its own `model_hub_mixin` tags included), for cards and files the mixin does not write."""
    return _FERModel._hub_mixin_info.model_card_data.to_dict()


def check_finite(model: nn.Module, source: str | os.PathLike) -> None:
    """Refuse a model whose weights or buffers hold NaN or infinity: it would load, export and
    answer one confident label for every face."""
    bad = [
        name
        for name, t in model.state_dict().items()
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        raise InputError(
            f"{source}: the weights hold NaN or infinite values ({len(bad)} of "
            f"{len(model.state_dict())} tensors, e.g. {bad[0]}); the checkpoint is broken: "
            f"train it again or restore a good copy"
        )


def _conv_block(c_in: int, c_out: int, n_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.ReLU(inplace=True)]
    # BatchNorm after the ReLU, as both papers publish it.
    return nn.Sequential(*layers, nn.BatchNorm2d(c_out), nn.MaxPool2d(2))


class CustomCNN(_FERModel):
    """3 x (conv3x3 -> ReLU -> BatchNorm -> maxpool), 64/128/256 channels, fc 9216->512->7.

    As originally published there is no activation between the two fully connected layers.
    5,093,255 parameters.
    """

    ARCHITECTURE = "custom-cnn"

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        dropout: float = 0.3,
        labels: list[str] = list(EMOTIONS),  # noqa: B006 - a list so it survives in config.json
        architecture: str = "custom-cnn",
        temperature: float = 1.0,
        uncertain_below: float = 0.0,
        tta: bool = False,
        int8: bool = False,
        sharpness_range: list[float] | None = None,
        class_bias: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._set_config(architecture, num_classes, labels, temperature, uncertain_below, tta, int8, sharpness_range, class_bias)  # fmt: skip
        self.features = nn.Sequential(
            _conv_block(in_channels, 64, 1),  # (B, 64, 24, 24)
            _conv_block(64, 128, 1),  # (B, 128, 12, 12)
            _conv_block(128, 256, 1),  # (B, 256, 6, 6)
        )
        self.fc1 = nn.Linear(256 * 6 * 6, 512)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(512, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (B, 9216)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.fc1(x)))


class CnnModel2(_FERModel):
    """Kandeel et al. 2021, "Model 2": 3 x (conv-ReLU-conv-ReLU-BatchNorm-maxpool), 64/128/256
    channels, then 9216->256->128->7 with ReLU and dropout 0.5. 3,538,503 parameters."""

    ARCHITECTURE = "cnn-model2"

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        dropout: float = 0.5,
        labels: list[str] = list(EMOTIONS),  # noqa: B006 - a list so it survives in config.json
        architecture: str = "cnn-model2",
        temperature: float = 1.0,
        uncertain_below: float = 0.0,
        tta: bool = False,
        int8: bool = False,
        sharpness_range: list[float] | None = None,
        class_bias: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._set_config(architecture, num_classes, labels, temperature, uncertain_below, tta, int8, sharpness_range, class_bias)  # fmt: skip
        self.features = nn.Sequential(
            _conv_block(in_channels, 64, 2),  # (B, 64, 24, 24)
            _conv_block(64, 128, 2),  # (B, 128, 12, 12)
            _conv_block(128, 256, 2),  # (B, 256, 6, 6)
        )
        self.head = nn.Sequential(
            nn.Linear(256 * 6 * 6, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (B, 9216)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


MODELS: dict[str, type[_FERModel]] = {"custom-cnn": CustomCNN, "cnn-model2": CnnModel2}


def model_file(path_or_repo_id: str | os.PathLike, filename: str, **kwargs) -> Path:
    """`filename` from a model folder or Hub repo (downloaded once), or NotFoundError."""
    if os.path.isdir(path_or_repo_id):
        path = Path(path_or_repo_id) / filename
        if not path.is_file():
            raise NotFoundError(f"{path_or_repo_id}: no {filename} in the model folder")
        return path
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(path_or_repo_id), filename, **_hub_kwargs(kwargs)))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        raise NotFoundError(
            f"Hub repo {path_or_repo_id!r}: no {filename} (or not in the local cache)"
        ) from None


def _hub_kwargs(kwargs: dict) -> dict:
    """The `from_pretrained` keyword arguments that `hf_hub_download` takes too."""
    return {k: kwargs[k] for k in ("revision", "token", "cache_dir") if k in kwargs}


def _hub_config(repo_id: str, hub_kw: dict) -> str:
    """config.json of a Hub model repo, or an error that says which repo and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return hf_hub_download(repo_id, "config.json", **hub_kw)
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub could not be reached"
        raise NotFoundError(
            f"Hub repo {repo_id!r} is not in the local cache and {why}: download it once online, "
            "or pass a local model folder"
        ) from None
    except GatedRepoError:
        raise AccessError(
            f"Hub repo {repo_id!r} is gated: accept its terms on the Hub, then log in"
        ) from None
    except RepositoryNotFoundError:
        raise NotFoundError(
            f"no model repo {repo_id!r} on the Hub (or it is private: log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise NotFoundError(f"Hub repo {repo_id!r} has no revision {hub_kw.get('revision')!r}") from None
    except RemoteEntryNotFoundError:
        raise NotFoundError(f"Hub repo {repo_id!r} has no config.json: not a fer_hub model") from None


def tta_logits(model, x: torch.Tensor) -> torch.Tensor:
    """The mean of the logits of faces `x` (B, 1, H, W) and of their mirror images, from one
    forward pass of the 2B images (a torch model or an `OnnxClassifier`)."""
    both = model(torch.cat([x, x.flip(-1)]))
    return (both[: len(x)] + both[len(x) :]) / 2


def load_model(path_or_repo_id: str | os.PathLike, **kwargs) -> CustomCNN | CnnModel2:
    """Load either model from a local Hub-style folder or a Hub repo id, picking the class from
    the "architecture" entry of its config.json. Extra kwargs go to `from_pretrained`."""
    model_id = str(path_or_repo_id)
    if os.path.isdir(model_id):
        config_file = Path(model_id) / "config.json"
        if not config_file.is_file():
            raise NotFoundError(f"{config_file} not found: is {model_id!r} a fer_hub model folder?")
    elif (
        os.path.exists(model_id)
        or model_id.count("/") != 1
        or model_id.startswith((".", "/", "~"))
        or os.path.isdir(model_id.split("/")[0])  # "runs/typo": a local folder's child, not ORG/NAME
    ):
        raise NotFoundError(f"{model_id!r} is neither a model folder nor a Hub repo id of the form ORG/NAME")
    else:
        hub_kw = _hub_kwargs(kwargs)
        config_file = Path(_hub_config(model_id, hub_kw))
    try:
        architecture = json.loads(config_file.read_text())["architecture"]
    except (ValueError, KeyError) as e:
        raise InputError(f"{config_file} has no readable 'architecture' entry ({e!r})") from e
    if architecture not in MODELS:
        raise InputError(
            f"{config_file}: unknown architecture {architecture!r}; expected one of {list(MODELS)}"
        )
    return MODELS[architecture].from_pretrained(model_id, **kwargs)
