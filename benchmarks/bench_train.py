"""Training speed and accuracy: recipes x models side by side, and what is fastest on a CPU.

    python benchmarks/bench_train.py --speed                                     # CPU settings sweep
    python benchmarks/bench_train.py --speed --rounds 3                          # ... three times, medians
    python benchmarks/bench_train.py --dataset ../shared/fer2013                 # full runs (GPU)
    python benchmarks/bench_train.py --dataset ../shared/fer2013 --epochs 1 --limit 2000   # CPU smoke

`--speed` times the training step exactly as `fer_hub.training.loop` runs it (augmentation, forward,
backward, AdamW, EMA update) for each model over batch size, memory format, thread count,
torch.compile and bf16 autocast (where the CPU computes bf16 natively), and prints images/s; it is
how the CPU defaults (batch 64, channels_last, one thread per core, compile and bf16 where they
pay) were chosen. Stop any training run first (or `kill -STOP` it):
it shares the cores.

Without `--speed` it trains every recipe x model and prints seconds per epoch, images/s, total
training seconds, best validation accuracy, and test accuracy plain and with flip TTA. Test
accuracy is read once, after selection on validation, exactly as train_hub.py does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from fer_hub.training.config import RECIPES, TrainConfig
from fer_hub.training.loop import (
    bf16_pays_off,
    device_description,
    prepare_run,
    resolve_device,
    train,
    train_step,
)

# (batch, channels_last, threads, compile, bf16); threads 0 = torch's default
SPEED_GRID = [
    (64, False, 0, False, False),
    (64, True, 0, False, False),
    (128, True, 0, False, False),
    (256, True, 0, False, False),
    (64, True, 1, False, False),
    (64, True, 0, True, False),
    (64, True, 0, False, True),
    (64, True, 0, True, True),
]


def step_speed(
    model_name: str, batch: int, channels_last: bool, compile_: bool, bf16: bool, device, images: int
):
    """images/s of the strong recipe's training step (`fer_hub.training.loop.train_step`, the one
    `train()` runs), and seconds spent before the first step finished (compilation included)."""
    torch.manual_seed(0)
    n = max(4, images // batch)
    cfg = TrainConfig(
        **{**RECIPES["strong"], "epochs": n + 2},  # one step per epoch: the schedule lasts n + 2 steps
        model=model_name,
        batch_size=batch,
        channels_last=channels_last,
        compile=compile_,
        bf16=bf16,
        device=str(device),
    )
    X = torch.randint(0, 256, (batch, 1, 48, 48), dtype=torch.uint8)
    run = prepare_run(cfg, X, torch.randint(0, 7, (batch,)), log=lambda *_: None)
    idx = torch.arange(batch, device=run.device)
    t = time.perf_counter()
    for _ in range(2):
        train_step(run, idx)
    warmup = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(n):
        train_step(run, idx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - t), warmup


def speed(args) -> None:
    device = resolve_device(args.device)
    default_threads = torch.get_num_threads()
    print(f"device: {device} ({device_description(device)}); torch {torch.__version__}")
    print(
        f"{'model':11s} {'batch':>5s} {'layout':>14s} {'threads':>7s} {'compile':>7s} {'bf16':>5s} {'img/s':>7s} {'warm-up s':>9s}"
    )
    seen: dict[str, list[float]] = {}
    # Rounds interleave the settings (A B ... A B ...): a shared VM's speed drifts by tens of
    # percent over minutes, which one pass per setting cannot tell from a real difference.
    for _ in range(args.rounds):
        for model in args.models:
            for batch, cl, threads, comp, bf16 in SPEED_GRID:
                if bf16 and not bf16_pays_off(device):
                    continue  # emulated bf16: slower than float32, and not what training would use
                torch.set_num_threads(threads or default_threads)
                ips, warm = step_speed(model, batch, cl, comp, bf16, device, args.images)
                layout = "channels_last" if cl else "contiguous"
                setting = (
                    f"{model:11s} {batch:5d} {layout:>14s} {threads or default_threads:7d} "
                    f"{'yes' if comp else 'no':>7s} {'yes' if bf16 else 'no':>5s}"
                )
                seen.setdefault(setting, []).append(ips)
                print(f"{setting} {ips:7.0f} {warm:9.1f}", flush=True)
            torch.set_num_threads(default_threads)
    if args.rounds > 1:
        print(f"\nmedian of {args.rounds} rounds (min-max)")
        for setting, ips in seen.items():
            print(f"{setting} {statistics.median(ips):7.0f} ({min(ips):.0f}-{max(ips):.0f})")


def recipes(args) -> None:
    device = resolve_device(args.device)
    from fer_hub.training.data import load_fer2013

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
            with tempfile.TemporaryDirectory() as out:  # the run's resumable state goes here
                r = train(TrainConfig(**values, output=out), data=data, log=lambda *_: None).metrics
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", action="store_true", help="time the training step over CPU settings")
    p.add_argument("--images", type=int, default=1536, help="--speed: images timed per setting")
    p.add_argument(
        "--rounds", type=int, default=1, help="--speed: passes over the settings, then each one's median"
    )
    p.add_argument("--dataset", default="../shared/fer2013")
    p.add_argument("--models", nargs="+", default=["custom-cnn", "cnn-model2"])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--epochs", type=int, default=None, help="cap every run at this many epochs")
    p.add_argument("--limit", type=int, default=None, help="first N training images only")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    speed(args) if args.speed else recipes(args)


if __name__ == "__main__":
    main()
