"""Every setting of a training run, written once: a field of `TrainConfig` whose metadata says
what it means, and everything else generated from it.

Each field's `setting(...)` says its flag group and help (no group: not a flag), whether it
changes what the run learns (the model card's `reproduce_command` carries it), whether a resumed
run may change it, whether the card's recipe table shows it, and each recipe's value comes from
`RECIPES`. `build_parser` (the `train_hub.py` command line), `config_from_args`,
`reproduce_command`, the resume check (`RESUME_MAY_CHANGE`) and the card (`CARD_SETTINGS`) all
read that metadata: adding a setting is one edit here.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields

from ..models import MODELS
from .data import DEFAULT_DATASET, DEFAULT_REVISION

__all__ = [
    "TrainConfig",
    "RECIPES",
    "NOT_REPRODUCED",
    "RESUME_MAY_CHANGE",
    "CARD_SETTINGS",
    "build_parser",
    "config_from_args",
    "reproduce_command",
    "folders",
]

DATA, RECIPE, SYSTEM, HUB = (
    "model and data",
    "recipe (flags below override the recipe's values)",
    "system",
    "Hugging Face Hub",
)


def setting(
    default,
    help: str = "",
    *,
    group: str | None = None,
    learns: bool | str = True,
    resumable: bool = False,
    card: bool = False,
    **argparse_kw,
):
    """A TrainConfig field and what it means. `group`: the flag's --help group (None: no flag).
    `help`: its help text; "{recipes}" becomes each recipe's value (a recipe sets any field
    that its flag does not). `learns`: it changes what the run learns, so the reproduce
    command carries it when it differs from the recipe ("always": every time). `resumable`: a
    resumed run may change it. `card`: a row of the model card's recipe table."""
    meta = dict(
        group=group,
        help=help,
        learns=learns,
        resumable=resumable,
        card=card,
        argparse=argparse_kw,
    )
    return field(default=default, metadata=meta)


RECIPES: dict[str, dict] = {
    "reference": {},  # the TrainConfig defaults below: the published recipe
    # The recipe the shipped checkpoints use. What the reference recipe lacks on FER-2013 is
    # regularization for a 9216x512 fully-connected layer on 28k noisy labels: stronger
    # augmentation (zoom, wider rotation, random erasing), decoupled weight decay, a schedule that
    # anneals to zero instead of stopping on a plateau, and an average of the weights.
    "strong": dict(
        epochs=40,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        schedule="onecycle",
        warmup=0.15,
        patience=0,  # a one-cycle schedule is only done at its last step
        ema=0.999,  # about 1000 steps (2 epochs at batch 64) of averaging
        rotation=15.0,
        scale=0.15,
        erase=0.25,
    ),
    "fast": dict(
        epochs=30,
        batch_size=512,  # at batch 64 a GPU waits on per-step overhead, not on the math
        optimizer="adamw",
        lr=2e-3,
        weight_decay=0.05,
        schedule="onecycle",
        warmup=0.2,
        patience=0,
    ),
}


# ---------------------------------------------------------------------------------------------
# every knob of a run, printed at start and saved as training_args.json; field order is the
# order of --help, of the reproduce command and of the card's recipe table


@dataclass
class TrainConfig:
    model: str = setting("custom-cnn", "architecture (default: custom-cnn)", group=DATA, learns="always", choices=list(MODELS))  # fmt: skip
    dataset: str = setting(DEFAULT_DATASET, f"Hub dataset id or local folder laid out like one (data/train-*.parquet, ...) (default: {DEFAULT_DATASET})", group=DATA, learns="always")  # fmt: skip
    # None = DEFAULT_REVISION for DEFAULT_DATASET
    revision: str | None = setting(None, f"dataset commit to load (default: {DEFAULT_REVISION} for {DEFAULT_DATASET}, the latest commit for any other dataset)", group=DATA)  # fmt: skip
    limit: int | None = setting(None, "train on the first N training images only (default: all)", group=DATA, card=True, type=int)  # fmt: skip
    # the defaults are the reference recipe; RECIPES above overrides them per recipe
    recipe: str = setting("reference", "reference: the published recipe (default); strong: stronger augmentation, one-cycle and a weight average, what the shipped checkpoints use; fast: large-batch GPU recipe", group=RECIPE, learns="always", card=True, choices=list(RECIPES))  # fmt: skip
    # a maximum: early stopping usually ends the run sooner
    epochs: int = setting(100, "maximum epochs ({recipes})", group=RECIPE, learns="always", card=True, type=int)  # fmt: skip
    batch_size: int = setting(64, "images per step ({recipes})", group=RECIPE, card=True, type=int)  # fmt: skip
    # adam: L2 weight decay, as published; adamw: decoupled
    optimizer: str = setting("adam", card=True)
    lr: float = setting(5e-4, "peak learning rate ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    # epochs without a new best validation accuracy before stopping
    patience: int = setting(5, "early-stopping patience in epochs, 0 = off ({recipes})", group=RECIPE, card=True, type=int)  # fmt: skip
    # decay of the weight average that is validated and shipped
    ema: float = setting(0.0, "weight-average decay, 0 = off ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    # the weight average averages BatchNorm's running statistics with the weights, so they lag
    # behind them (training/batchnorm.py); re-estimated, the weights validated are what ships
    ema_batchnorm: int = setting(0, "re-estimate the weight average's BatchNorm statistics on this many training faces before each validation, 0 = keep the averaged ones ({recipes})", group=RECIPE, card=True, type=int)  # fmt: skip
    weight_decay: float = setting(1e-4, "weight decay ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    label_smoothing: float = setting(0.1, card=True)
    # step: StepLR(step_size, gamma) per epoch; onecycle: per step
    schedule: str = setting("step", card=True)
    step_size: int = setting(5, card=True)  # epochs between StepLR decays
    gamma: float = setting(0.5, card=True)  # StepLR decay factor
    warmup: float = setting(0.0, card=True)  # onecycle: fraction of all steps spent warming up
    # augmentation beyond flip, crop (pad 4) and brightness/contrast 0.2, which every recipe has
    rotation: float = setting(10.0, "random rotation, +- degrees ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    scale: float = setting(0.0, "random zoom, +- fraction, 0 = off ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    # one gray rectangle, 2-20% of the face
    erase: float = setting(0.0, "probability of erasing a random patch, 0 = off ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    # warm start: fine-tune a trained model instead of a random initialisation
    init: str | None = setting(None, "start from the weights of this trained model folder of the same architecture (fine-tuning; default: a random initialisation)", group=RECIPE, card=True)  # fmt: skip
    # Aimed at features that separate expressions rather than at FER-2013's majority classes
    # (happy and neutral are 40% of its training split).
    mixup: float = setting(0.0, "mixup: blend pairs of training images and their labels with a Beta(a, a) weight; a = this, 0 = off ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    logit_adjust: float = setting(0.0, "logit-adjusted loss (Menon et al. 2021): add this times log(class frequency) to the logits in the label loss, so the model does not buy accuracy by favouring frequent expressions; 1 = balanced, 0 = off ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    degrade: float = setting(0.0, "probability of one photographic degradation per image: blur, noise, low resolution or low light, 0 = off ({recipes})", group=RECIPE, card=True, type=float)  # fmt: skip
    # distillation: soft targets from a trained model folder (its flip-averaged probabilities on
    # the un-augmented training images, computed once), mixed into the loss
    # several folders: an ensemble teacher, the mean of their soft targets (a str in the records
    # of runs made before several were allowed: `folders`)
    teacher: list[str] | None = setting(None, "distil from these trained model folders: the mean of their soft targets joins the loss, so several folders make an ensemble teacher (default: none)", group=RECIPE, card=True, nargs="+", metavar="FOLDER")  # fmt: skip
    # weight of the distillation term; 1 - distill goes to the labels
    distill: float = setting(0.5, "weight of the distillation loss with --teacher (default: 0.5)", group=RECIPE, card=True, type=float)  # fmt: skip
    distill_temperature: float = setting(2.0)  # softens teacher and student alike (Hinton et al. 2015)
    # speed: settings that change how fast a run is, not what it learns
    # None: where the hardware computes bf16 natively (loop.bf16_pays_off); autocast keeps the
    # weights, the optimizer and the loss in float32
    bf16: bool | None = setting(None, "bf16 autocast for the forward pass (default: where the hardware computes bf16 natively: on CUDA, and on CPUs with AVX-512 BF16 or AMX)", group=RECIPE, learns=False, card=True, action=argparse.BooleanOptionalAction)  # fmt: skip
    channels_last: bool = setting(True, card=True)  # faster on this project's CPU (bench_train.py --speed)
    # None: where it pays (loop.compile_pays_off)
    compile: bool | None = setting(None, "torch.compile the training step (default: where measured to pay off: on CUDA)", group=RECIPE, learns=False, card=True, action=argparse.BooleanOptionalAction)  # fmt: skip
    device: str = setting("auto", "where to train (default: auto = cuda, then mps, then cpu)", group=SYSTEM, learns=False, choices=["auto", "cpu", "cuda", "mps"])  # fmt: skip
    # 0: torch's default, one per core
    threads: int = setting(0, "CPU threads for torch (default: one per core)", group=SYSTEM, learns=False, type=int)  # fmt: skip
    seed: int = setting(0, "seed of initialization, order and augmentation (default: 0)", group=SYSTEM, learns="always", card=True, type=int)  # fmt: skip
    output: str = setting("out", "folder to write the Hub model folder into (default: out)", group=SYSTEM, learns=False, resumable=True)  # fmt: skip
    # float16: a half-size model.safetensors
    save_dtype: str = setting("float32", "dtype of model.safetensors; float16 halves its size (default: float32)", group=SYSTEM, choices=["float32", "float16"])  # fmt: skip
    resume: bool = setting(False, "continue the unfinished run in --output from its training_state.pt (same flags)", group=SYSTEM, learns=False, resumable=True, action="store_true")  # fmt: skip
    push: bool = setting(False, "upload the output folder to --repo-id in one commit", group=HUB, learns=False, resumable=True, action="store_true")  # fmt: skip
    repo_id: str | None = setting(None, "ORG/NAME of the model repo to push to", group=HUB, learns=False, resumable=True)  # fmt: skip
    private: bool = setting(False, "create the repo as private", group=HUB, learns=False, resumable=True, action="store_true")  # fmt: skip


# What the metadata says, gathered once.
NOT_REPRODUCED = frozenset(f.name for f in fields(TrainConfig) if not f.metadata["learns"])
RESUME_MAY_CHANGE = frozenset(f.name for f in fields(TrainConfig) if f.metadata["resumable"])
CARD_SETTINGS = tuple(f.name for f in fields(TrainConfig) if f.metadata["card"])


# ---------------------------------------------------------------------------------------------
# command line


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _by_recipe(name: str) -> str:
    """'reference X, strong Y, fast Z': each recipe's value of TrainConfig field `name`."""
    base = asdict(TrainConfig())
    return ", ".join(f"{r} {RECIPES[r].get(name, base[name])}" for r in RECIPES)


def reproduce_command(config: dict) -> str:
    """The train_hub.py command line that re-runs the training `config` (a TrainConfig as a dict):
    the recipe plus every flag whose value differs from that recipe's."""
    recipe = {**asdict(TrainConfig()), **RECIPES[config["recipe"]]}
    parts = ["python train_hub.py"]
    for f in fields(TrainConfig):
        learns = f.metadata["learns"]
        if f.name not in config or not f.metadata["group"] or not learns:
            continue
        value = config[f.name]
        if learns == "always" or (value != recipe.get(f.name) and value is not None):
            if isinstance(value, float):
                value = f"{value:g}"
            elif isinstance(value, list):
                value = " ".join(value)
            parts.append(f"{_flag(f.name)} {value}")
    return " ".join(parts)


def folders(value: str | list[str] | None) -> list[str]:
    """The folders a path setting names (`teacher`): a list now, one str in older records."""
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def build_parser() -> argparse.ArgumentParser:
    """The train_hub.py command line, one flag per TrainConfig field with a group. Every flag
    defaults to None, so "not given" can be told apart from "given": `config_from_args` fills in
    the recipe's value, and the help text says it."""
    p = argparse.ArgumentParser(
        prog="train_hub.py",
        description="Train a FER-2013 expression CNN, evaluate it, and write (and optionally push) "
        "a Hugging Face Hub model folder. The training state is saved after every epoch: "
        "re-run the same command with --resume to continue an interrupted run.",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(TrainConfig):
        meta = f.metadata
        if not meta["group"]:
            continue
        if meta["group"] not in groups:
            groups[meta["group"]] = p.add_argument_group(meta["group"])
        help_text = meta["help"].replace("{recipes}", _by_recipe(f.name))
        groups[meta["group"]].add_argument(_flag(f.name), default=None, help=help_text, **meta["argparse"])
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the recipe's values, then every flag the user actually gave."""
    defaults = asdict(TrainConfig())
    recipe = args.recipe or defaults["recipe"]
    values = {**defaults, **RECIPES[recipe], "recipe": recipe}
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return TrainConfig(**values)
