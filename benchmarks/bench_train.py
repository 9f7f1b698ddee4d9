"""Both recipes x both models in one run, side by side: speed and accuracy.

    python benchmarks/bench_train.py --dataset ../shared/fer2013                 # full runs (GPU)
    python benchmarks/bench_train.py --dataset ../shared/fer2013 --epochs 1 --limit 2000   # CPU smoke

Prints, per run: seconds per epoch, images/s, total training seconds, best validation accuracy,
and test accuracy plain and with flip TTA, and the device it ran on. Test accuracy is read once,
after selection on validation, exactly as train_hub.py does.
"""

from __future__ import annotations

import argparse

from fer_hub.data import load_fer2013
from fer_hub.train import RECIPES, TrainConfig, device_description, resolve_device, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="../shared/fer2013")
    p.add_argument("--models", nargs="+", default=["custom-cnn", "cnn-model2"])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--epochs", type=int, default=None, help="cap every run at this many epochs")
    p.add_argument("--limit", type=int, default=None, help="first N training images only")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    device = resolve_device(args.device)
    data = load_fer2013(args.dataset, seed=args.seed, log=lambda *_: None)
    rows = []
    for recipe in args.recipes:
        for model in args.models:
            values = {
                **RECIPES[recipe],
                "recipe": recipe,
                "model": model,
                "dataset": args.dataset,
                "device": args.device,
                "seed": args.seed,
                "limit": args.limit,
            }
            if args.epochs:
                values["epochs"] = args.epochs
            r = train(TrainConfig(**values), data=data, log=lambda *_: None).metrics
            test = r.get("test", {})
            rows.append(
                (
                    recipe,
                    model,
                    r["epochs_run"],
                    r["seconds_per_epoch"],
                    r["images_per_second"],
                    r["train_seconds"],
                    r["validation"]["accuracy"],
                    test.get("accuracy", float("nan")),
                    test.get("accuracy_tta", float("nan")),
                )
            )
            print(f"done: {recipe} {model}", flush=True)
    print(
        f"\ndevice: {device} ({device_description(device)}); dataset {args.dataset}; "
        f"limit {args.limit or 'none'}; epochs cap {args.epochs or 'recipe default'}"
    )
    print(
        f"{'recipe':10s} {'model':11s} {'epochs':>6s} {'s/epoch':>8s} {'img/s':>8s} {'train s':>8s} "
        f"{'best val':>8s} {'test':>7s} {'test TTA':>8s}"
    )
    for recipe, model, ep, spe, ips, total, val, test, tta in rows:
        print(
            f"{recipe:10s} {model:11s} {ep:6d} {spe:8.2f} {ips:8.0f} {total:8.1f} "
            f"{val:8.4f} {test:7.4f} {tta:8.4f}"
        )


if __name__ == "__main__":
    main()
