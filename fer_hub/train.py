"""Train a FER-2013 CNN, evaluate it, and write a Hub-ready model folder (optionally pushed).

    python train_hub.py --model custom-cnn --dataset ../shared/fer2013 --output out
    python train_hub.py --model cnn-model2 --recipe fast --device cuda --push --repo-id ORG/NAME

Two recipes. `reference` is the published one: batch 64, Adam 5e-4 (weight decay 1e-4), StepLR
(5, 0.5), early stopping (patience 5) on validation accuracy, at most 100 epochs. `fast` is for a
GPU: large batches, AdamW with a one-cycle schedule, bf16 autocast, channels_last and optional
torch.compile. Both keep the decoded dataset on the training device as uint8 and augment whole
batches there (`fer_hub.augment`), select the best epoch on validation, and touch the test split
exactly once, at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import AugmentConfig, augment_batch
from .data import DEFAULT_DATASET, FERData, load_fer2013
from .evaluate import evaluate, predict_proba
from .labels import EMOTIONS
from .models import MODELS
from .preprocess import normalize

__all__ = ["TrainConfig", "RECIPES", "train", "write_model_folder", "main"]


# ---------------------------------------------------------------------------------------------
# hyperparameters: every knob of a run, printed at start and saved as training_args.json


@dataclass
class TrainConfig:
    # model and data
    model: str = "custom-cnn"  # custom-cnn | cnn-model2
    dataset: str = DEFAULT_DATASET  # Hub dataset id or local folder laid out like one
    limit: int | None = None  # use only the first N training images (smoke runs)
    # recipe (defaults = the reference recipe; RECIPES below overrides per recipe)
    recipe: str = "reference"
    epochs: int = 100  # maximum; early stopping usually ends the run sooner
    batch_size: int = 64
    optimizer: str = "adam"  # adam (L2 weight decay, as published) | adamw (decoupled)
    lr: float = 5e-4  # peak learning rate
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    schedule: str = "step"  # step: StepLR(step_size, gamma) per epoch | onecycle: per step
    step_size: int = 5  # epochs between StepLR decays
    gamma: float = 0.5  # StepLR decay factor
    warmup: float = 0.0  # onecycle: fraction of all steps spent warming up
    patience: int = 5  # epochs without a new best validation accuracy before stopping; 0 = off
    # speed (the fast recipe turns these on where the device supports them)
    bf16: bool = False  # bf16 autocast (CUDA only)
    channels_last: bool = False
    compile: bool = False  # torch.compile the training step's model
    # system
    device: str = "auto"  # auto | cpu | cuda | mps
    seed: int = 0
    output: str = "out"
    save_dtype: str = "float32"  # float32 | float16 (half-size model.safetensors)
    push: bool = False
    repo_id: str | None = None
    private: bool = False


RECIPES: dict[str, dict] = {
    "reference": {},  # the TrainConfig defaults above
    "fast": dict(
        epochs=30,
        batch_size=512,  # at batch 64 a GPU waits on per-step overhead, not on the math
        optimizer="adamw",
        lr=2e-3,
        weight_decay=0.05,
        schedule="onecycle",
        warmup=0.2,
        patience=0,  # a one-cycle schedule is only done at its last step
        bf16=True,
        channels_last=True,
        compile=True,
    ),
}


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is visible to torch (use --device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple MPS is not available here (use --device auto or cpu)")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """Human-readable hardware name, for logs and the model card."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    name = platform.processor() or platform.machine()
    try:  # Linux: the marketing name is only in /proc/cpuinfo
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class RunResult:
    model: torch.nn.Module  # the best-on-validation weights, uncompiled, on the CPU
    history: list[dict]
    metrics: dict
    config: TrainConfig
    data: FERData


def train(cfg: TrainConfig, data: FERData | None = None, log=print) -> RunResult:
    """Train `cfg.model` with `cfg`'s recipe, restore the best validation epoch, evaluate
    validation and (once) test. Ctrl-C stops training but keeps the best weights so far."""
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    use_bf16 = cfg.bf16 and device.type == "cuda"
    use_compile = cfg.compile and device.type == "cuda"  # CPU compile costs minutes to save seconds
    log(
        f"[train] device {device} ({device_description(device)}); bf16 {use_bf16}, "
        f"channels_last {cfg.channels_last}, compile {use_compile}"
    )
    if data is None:
        data = load_fer2013(cfg.dataset, seed=cfg.seed, log=log)
    x_train, y_train = data.x_train, data.y_train
    if cfg.limit:
        x_train, y_train = x_train[: cfg.limit], y_train[: cfg.limit]
    log(f"[data] {data.summary()}; training on {len(x_train):,} images")

    model = MODELS[cfg.model]().to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    step_model = torch.compile(model) if use_compile else model  # save `model`, never this
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[model] {type(model).__name__}: {n_params:,} parameters")

    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x_train)
    # Drop a last partial batch (BatchNorm dislikes a batch of 1); tiny data gets one short step.
    steps_per_epoch = max(1, n // cfg.batch_size)
    if cfg.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=max(cfg.warmup, 1e-3)
        )

    # The whole training split lives on the device as uint8 (about 66 MB): no DataLoader, no
    # workers, no host-to-device copy per step.
    X, Y = x_train.to(device), y_train.to(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    aug = AugmentConfig()
    log_every = 1 if device.type == "cpu" else 25  # each progress update syncs with the GPU

    history: list[dict] = []
    best_acc, best_state, best_epoch, bad_epochs, interrupted = -1.0, None, 0, 0, False
    t_start = time.perf_counter()
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            perm = torch.randperm(n, device=device, generator=gen)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            bar = tqdm(
                range(steps_per_epoch),
                desc=f"epoch {epoch}/{cfg.epochs}",
                unit="step",
                leave=False,
                dynamic_ncols=True,
                disable=None,
            )
            for step in bar:
                idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                xb = normalize(augment_batch(X[idx].float().div_(255), aug, gen))  # (B, 1, 48, 48)
                xb = xb.contiguous(memory_format=memory_format)
                yb = Y[idx]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    logits = step_model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if cfg.schedule == "onecycle":
                    sched.step()
                loss_sum += loss.detach() * len(idx)
                correct += (logits.argmax(-1) == yb).sum()
                seen += len(idx)
                if step % log_every == 0 or step == steps_per_epoch - 1:
                    bar.set_postfix(
                        loss=f"{loss_sum.item() / seen:.3f}",
                        acc=f"{correct.item() / seen:.3f}",
                        lr=f"{opt.param_groups[0]['lr']:.2e}",
                    )
            lr_now = opt.param_groups[0]["lr"]
            if cfg.schedule == "step":
                sched.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            val_pred = predict_proba(
                model, data.x_val, device=device, autocast_dtype=torch.bfloat16 if use_bf16 else None
            ).argmax(-1)
            val_acc = float((val_pred == data.y_val).float().mean())
            record = dict(
                epoch=epoch,
                train_loss=loss_sum.item() / seen,
                train_acc=correct.item() / seen,
                val_acc=val_acc,
                lr=lr_now,
                seconds=seconds,
                images=seen,
            )
            history.append(record)
            improved = val_acc > best_acc
            if improved:
                best_acc, best_epoch, bad_epochs = val_acc, epoch, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            log(
                f"epoch {epoch:3d} | loss {record['train_loss']:.4f} | train acc {record['train_acc']:.4f} "
                f"| val acc {val_acc:.4f}{' *' if improved else '  '} | lr {lr_now:.2e} | {seconds:.1f}s"
            )
            if cfg.patience and bad_epochs >= cfg.patience:
                log(f"[train] early stop: no better validation accuracy for {cfg.patience} epochs")
                break
    except KeyboardInterrupt:
        interrupted = True
        log(f"\n[train] interrupted: keeping the best checkpoint so far (epoch {best_epoch})")
    train_seconds = time.perf_counter() - t_start
    if best_state is None:
        raise RuntimeError("training stopped before the first epoch finished: nothing to save")

    model = model.to(memory_format=torch.contiguous_format)
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    log(
        f"[train] best validation accuracy {best_acc:.4f} at epoch {best_epoch}; "
        f"{train_seconds:.1f}s in {len(history)} epochs"
    )

    # Final evaluation on the CPU copy in float32: the numbers any user can reproduce.
    metrics: dict = {"validation": evaluate(model, data.x_val, data.y_val)}
    if data.x_test is not None:
        metrics["test"] = evaluate(model, data.x_test, data.y_test)  # the one and only test look
    epoch_seconds = sum(h["seconds"] for h in history)
    metrics.update(
        best_epoch=best_epoch,
        epochs_run=len(history),
        interrupted=interrupted,
        train_seconds=train_seconds,  # wall clock of the loop, validation passes included
        seconds_per_epoch=epoch_seconds / len(history),  # training steps only
        images_per_second=sum(h["images"] for h in history) / max(epoch_seconds, 1e-9),
        device=str(device),
        hardware=device_description(device),
        torch_version=torch.__version__,
        n_train=len(x_train),
        n_validation=len(data.x_val),
        n_test=None if data.x_test is None else len(data.x_test),
        parameters=n_params,
        data_notes=data.notes,
    )
    for split in ("validation", "test"):
        if split in metrics:
            m = metrics[split]
            log(
                f"[eval] {split}: accuracy {m['accuracy']:.4f} (flip TTA {m['accuracy_tta']:.4f}), "
                f"macro-F1 {m['macro_f1']:.4f}"
            )
    return RunResult(model, history, metrics, cfg, data)


# ---------------------------------------------------------------------------------------------
# the Hub folder


def write_model_folder(result: RunResult, output: str | Path) -> Path:
    """Write everything `push_to_hub` would upload: weights, config, model card, metrics,
    history, training arguments and figures."""
    from .card import build_model_card
    from .plots import plot_confusion_matrix, plot_history

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    to_save = result.model
    if cfg.save_dtype == "float16":
        to_save = copy.deepcopy(result.model).half()
    to_save.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    (out / "history.json").write_text(json.dumps(result.history, indent=2))
    (out / "training_args.json").write_text(json.dumps(asdict(cfg), indent=2))
    title = f"{cfg.model} on FER-2013"
    plot_history(result.history, out / "training_curves.png", title=title)
    for split in ("validation", "test"):
        if split in result.metrics:
            plot_confusion_matrix(
                result.metrics[split]["confusion_matrix"],
                EMOTIONS,
                out / f"confusion_matrix_{split}.png",
                title=f"{title}: {split}",
            )
    build_model_card(result.metrics, asdict(cfg), type(result.model)).save(out / "README.md")
    return out


# ---------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_hub.py",
        description="Train a FER-2013 expression CNN, evaluate it, and write (and optionally push) "
        "a Hugging Face Hub model folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("model and data")
    g.add_argument("--model", choices=list(MODELS), default="custom-cnn", help="architecture to train")
    g.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help="Hub dataset id or local folder laid out like one (data/train-*.parquet, ...)",
    )
    g.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    g = p.add_argument_group("recipe (flags below override the recipe's values)")
    g.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="reference",
        help="reference: the published recipe; fast: large-batch GPU recipe",
    )
    g.add_argument("--epochs", type=int, default=None, help="maximum epochs (reference 100, fast 30)")
    g.add_argument("--batch-size", type=int, default=None, help="images per step (reference 64, fast 512)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (reference 5e-4, fast 2e-3)")
    g.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early-stopping patience in epochs, 0 = off (reference 5, fast 0)",
    )
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model on CUDA (fast recipe: on)",
    )
    g = p.add_argument_group("system")
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--output", default="out", help="folder to write the Hub model folder into")
    g.add_argument(
        "--save-dtype",
        choices=["float32", "float16"],
        default="float32",
        help="dtype of model.safetensors (float16 halves its size)",
    )
    g = p.add_argument_group("Hugging Face Hub")
    g.add_argument(
        "--push",
        action="store_true",
        default=None,
        help="upload the output folder to --repo-id in one commit",
    )
    g.add_argument("--repo-id", default=None, help="ORG/NAME of the model repo to push to")
    g.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Recipe values first, then every flag the user actually gave."""
    values = {**asdict(TrainConfig()), **RECIPES[args.recipe], "recipe": args.recipe}
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    for name in ("epochs", "batch_size", "limit"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    try:
        if cfg.push:
            from .hub import check_can_push

            check_can_push(cfg.repo_id)  # fail before spending an hour training
        print("fer_hub training run\n" + "\n".join(f"  {k:16s} {v}" for k, v in asdict(cfg).items()))
        result = train(cfg)
        out = write_model_folder(result, cfg.output)
        print(f"[done] model folder written to {out.resolve()}")
        if cfg.push:
            from .hub import push_folder

            url = push_folder(
                out,
                cfg.repo_id,
                private=cfg.private,
                commit_message=f"fer_hub: {cfg.model} ({cfg.recipe} recipe)",
            )
            print(f"[done] pushed to {url}")
    except (ValueError, RuntimeError, FileNotFoundError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
