"""The training wing's command lines: `train_hub.py` / `fer-train` / `fer-hub train`,
`fer-hub calibrate` and `fer-hub soup`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path

from ..errors import FerHubError, NotFoundError
from .config import TrainConfig, build_parser, config_from_args
from .data import DEFAULT_DATASET, load_fer2013
from .folder import calibrate_folder, check_new_folder, write_model_folder, write_soup_folder
from .loop import train
from .state import STATE_FILE

__all__ = ["main", "config_of", "calibrate_main", "soup_main"]


def config_of(argv: list[str] | None = None) -> TrainConfig:
    """The run that train_hub.py's command line `argv` asks for, checked: a flag it refuses
    exits with argparse's usage error, before any data loads."""
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    for name in ("epochs", "batch_size", "limit", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if cfg.ema_batchnorm < 0 or (cfg.ema_batchnorm and not cfg.ema):
        parser.error(
            f"--ema-batchnorm {cfg.ema_batchnorm}: a number of faces (0 = off), for a run with a weight average (--ema)"
        )
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = config_of(argv)
    try:
        if cfg.push:
            from .hub import check_can_push

            check_can_push(cfg.repo_id)  # fail before spending an hour training
        print("fer_hub training run\n" + "\n".join(f"  {k:16s} {v}" for k, v in asdict(cfg).items()))
        result = train(cfg)
        out = write_model_folder(result, cfg.output)
        print(f"[done] model folder written to {out.resolve()}")
        if not result.metrics["interrupted"]:
            (out / STATE_FILE).unlink(missing_ok=True)  # the run is over: nothing to resume
        else:
            print(
                f"[done] the run can continue: add --resume to the same command (state in {out / STATE_FILE})"
            )
        if cfg.push:
            from .hub import push_folder

            url = push_folder(
                out,
                cfg.repo_id,
                private=cfg.private,
                commit_message=f"fer_hub: {cfg.model} ({cfg.recipe} recipe)",
            )
            print(f"[done] pushed to {url}")
    except FerHubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def calibrate_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="fer-hub calibrate",
        description="Fit the temperature, the class bias and the 'uncertain' threshold of a trained model folder on "
        "the validation split, measure them on test, and write them into the folder.",
    )
    p.add_argument("folder", help="model folder written by train_hub.py")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"FER-2013 copy (default: {DEFAULT_DATASET})")
    p.add_argument("--revision", default=None, help="dataset commit (default: the pinned one)")
    p.add_argument(
        "--class-bias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="try a bias per class, kept where cross-validation on validation says it predicts better "
        "(default); --no-class-bias: the temperature alone, which changes no label",
    )
    p.add_argument(
        "--withhold-test",
        action="store_true",
        help="fit and measure on validation alone, and remove the folder's test figures (they would describe "
        "another calibration): for choosing between candidates without a look at test; calibrate the chosen "
        "one again without it",
    )
    args = p.parse_args(argv)
    try:
        check_model_folder(args.folder)
        data = load_fer2013(args.dataset, revision=args.revision)
        if args.withhold_test:
            data = replace(data, x_test=None, y_test=None)
        calibrate_folder(args.folder, data, class_bias=args.class_bias)
    except FerHubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def check_model_folder(folder: str) -> None:
    """Refuse, before any data is loaded, a folder that holds no model."""
    if not (Path(folder) / "config.json").is_file():
        raise NotFoundError(f"{folder}: no config.json; give a model folder written by train_hub.py")


def soup_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="fer-hub soup",
        description="Average the weights of fine-tunes of one model (a greedy weight soup, chosen on "
        "the validation split), then calibrate the soup and measure it on test, into a new model folder. "
        "One folder: that model with its BatchNorm statistics re-estimated on training faces.",
    )
    p.add_argument("output", help="new model folder for the soup")
    p.add_argument(
        "ingredients", nargs="+", help="model folders: fine-tunes of the same starting weights (or one model)"
    )
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"FER-2013 copy (default: {DEFAULT_DATASET})")
    p.add_argument("--revision", default=None, help="dataset commit (default: the pinned one)")
    args = p.parse_args(argv)
    try:
        from .soup import greedy_soup

        for folder in args.ingredients:
            check_model_folder(folder)
        out = check_new_folder(args.output)  # before the work, not after
        data = load_fer2013(args.dataset, revision=args.revision)
        soup = greedy_soup(args.ingredients, data)
        command = " ".join(["fer-hub soup", args.output, *args.ingredients, "--dataset", args.dataset])
        write_soup_folder(soup, data, args.output, command)
        print(
            f"[soup] {len(soup.kept)} of {len(args.ingredients)} kept; validation {soup.validation_accuracy:.2%}"
        )
        print(f"[done] model folder written to {out.resolve()}")
    except FerHubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
