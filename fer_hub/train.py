"""Alias of the training wing's public names, where they lived before `fer_hub.training`: code
and commands written against `fer_hub.train` (`from fer_hub.train import train, TrainConfig`,
`python -m fer_hub.train`) keep working. New code imports from `fer_hub.training`."""

from .training.cli import main
from .training.config import RECIPES, TrainConfig, build_parser, config_from_args, reproduce_command
from .training.folder import write_model_folder
from .training.loop import RunResult, train

__all__ = [
    "TrainConfig",
    "RECIPES",
    "RunResult",
    "train",
    "write_model_folder",
    "reproduce_command",
    "build_parser",
    "config_from_args",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
