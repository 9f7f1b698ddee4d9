"""Train a FER-2013 CNN, evaluate it, and write a Hub-ready model folder (optionally pushed).

    python train_hub.py --model custom-cnn --dataset ../shared/fer2013 --output out
    python train_hub.py --model cnn-model2 --recipe fast --device cuda --push --repo-id ORG/NAME

Three recipes (RECIPES below). `reference` is the published one: batch 64, Adam 5e-4 (weight decay
1e-4), StepLR(5, 0.5), early stopping (patience 5) on validation accuracy, at most 100 epochs.
`strong` trains the shipped checkpoints: stronger augmentation, AdamW, one-cycle and a weight
average (EMA). `fast` is for a GPU: large batches, one-cycle, bf16 autocast and torch.compile. All
keep the decoded dataset on the training device as uint8 and augment whole batches there
(`fer_hub.augment`), select the best epoch on validation, and touch the test split exactly once,
at the end. The whole run state is saved after every epoch (`fer_hub.train_state`): `--resume`
continues a killed run and ends with the weights an unbroken run would have.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import AugmentConfig, augment_batch
from .calibration import calibration_report, no_signal_note
from .data import DEFAULT_DATASET, DEFAULT_REVISION, FERData, load_fer2013
from .ema import EMA
from .evaluate import evaluate, predict_logits, predict_proba
from .labels import EMOTIONS
from .models import MODELS
from .preprocess import normalize
from .train_state import STATE_FILE, TEMP_PREFIX, TrainState, config_differences, prepare_output

__all__ = ["TrainConfig", "RECIPES", "train", "write_model_folder", "reproduce_command", "main"]


# ---------------------------------------------------------------------------------------------
# hyperparameters: every knob of a run, printed at start and saved as training_args.json


@dataclass
class TrainConfig:
    # model and data
    model: str = "custom-cnn"  # custom-cnn | cnn-model2
    dataset: str = DEFAULT_DATASET  # Hub dataset id or local folder laid out like one
    revision: str | None = None  # dataset commit; None = DEFAULT_REVISION for DEFAULT_DATASET
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
    ema: float = 0.0  # decay of the weight average that is validated and shipped; 0 = off
    # augmentation beyond flip, crop (pad 4) and brightness/contrast 0.2, which every recipe has
    rotation: float = 10.0  # degrees, uniform in [-r, r]
    scale: float = 0.0  # zoom factor uniform in [1 - s, 1 + s]
    erase: float = 0.0  # probability of random erasing (one gray rectangle, 2-20% of the face)
    # distillation: soft targets from a trained model folder (its flip-averaged probabilities on
    # the un-augmented training images, computed once), mixed into the loss
    teacher: str | None = None
    distill: float = 0.5  # weight of the distillation term; 1 - distill goes to the labels
    distill_temperature: float = 2.0  # softens teacher and student alike (Hinton et al. 2015)
    # speed: settings that change how fast a run is, not what it learns
    bf16: bool = False  # bf16 autocast (CUDA only)
    channels_last: bool = True  # 1.5x on this project's CPU for CustomCNN, 1.1x for CnnModel2
    compile: bool | None = None  # torch.compile the training step; None = where it pays (see below)
    threads: int = 0  # CPU threads for torch; 0 = torch's default (one per core)
    # system
    device: str = "auto"  # auto | cpu | cuda | mps
    seed: int = 0
    output: str = "out"
    save_dtype: str = "float32"  # float32 | float16 (half-size model.safetensors)
    resume: bool = False  # continue the unfinished run in `output` from its training state
    push: bool = False
    repo_id: str | None = None
    private: bool = False


RECIPES: dict[str, dict] = {
    "reference": {},  # the TrainConfig defaults above: the published recipe
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
        bf16=True,
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


def compile_pays_off(model: str, device: torch.device) -> bool:
    """Whether torch.compile speeds up training `model` on `device`, as measured by
    `benchmarks/bench_train.py --speed`: on a 2-core Xeon it makes CnnModel2's steps 1.3x faster
    (its 15 s compile is repaid in the first epoch) and CustomCNN's 10% slower; on CUDA it pays
    for both."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and model == "cnn-model2"


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


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module, steps_per_epoch: int):
    """The optimizer and learning-rate schedule of `cfg`'s recipe."""
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=max(cfg.warmup, 1e-3)
        )
    return opt, sched


@torch.inference_mode()
def teacher_targets(cfg: TrainConfig, x: torch.Tensor, log=print) -> torch.Tensor:
    """Soft targets (N, 7) in EMOTIONS order: the teacher's temperature-softened probabilities
    on the un-augmented training images, averaged with their mirror images."""
    from .models import load_model

    try:
        teacher = load_model(cfg.teacher)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"--teacher {cfg.teacher}: {e}") from None
    order = [list(teacher.labels).index(e) for e in EMOTIONS]
    log(f"[distill] soft targets from {cfg.teacher} ({type(teacher).__name__}), T={cfg.distill_temperature}")
    t = cfg.distill_temperature
    p = (
        (predict_logits(teacher, x, progress="teacher targets") / t).softmax(-1)
        + (predict_logits(teacher, x.flip(-1), progress="teacher targets (mirrored)") / t).softmax(-1)
    ) / 2
    return p[:, order]


def teacher_record(folder: str | Path) -> dict:
    """What identifies a distillation teacher once its folder has moved on: its architecture,
    its validation accuracy and the sha256 of its weights file."""
    import hashlib

    folder = Path(folder)
    record: dict = {"folder": str(folder)}
    try:
        record["architecture"] = json.loads((folder / "config.json").read_text())["architecture"]
        record["validation_accuracy"] = json.loads((folder / "metrics.json").read_text())["validation"][
            "accuracy"
        ]
    except (OSError, KeyError, ValueError):
        pass  # a folder from elsewhere (a Hub download without metrics): the hash still names it
    weights = folder / "model.safetensors"
    if weights.is_file():
        record["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    return record


def start_or_resume(cfg: TrainConfig, state_path: Path, log=print) -> TrainState:
    """A new state, or the saved one when `cfg.resume`; refuses anything ambiguous."""
    if not cfg.resume:
        saved = TrainState.load(state_path) if state_path.exists() else None
        if saved is not None and saved.epoch < saved.config["epochs"] and not saved.done:
            raise RuntimeError(
                f"{state_path.parent} holds an unfinished run ({saved.epoch}/{saved.config['epochs']} "
                f"epochs of {saved.config['model']}); pass --resume to continue it, or delete "
                f"{state_path.name} there (or pick another --output) to start afresh"
            )
        return TrainState(config=asdict(cfg))
    if not state_path.exists():
        finished = (state_path.parent / "model.safetensors").exists()
        raise RuntimeError(
            f"--resume: no training state in {state_path.parent}"
            + (" (the run there has finished: its model folder is written)" if finished else "")
            + "; leave out --resume to start a new run"
        )
    state = TrainState.load(state_path)
    diff = config_differences(state.config, asdict(cfg), defaults=asdict(TrainConfig()))
    if diff:
        raise RuntimeError(
            f"--resume: the run in {state_path.parent} was started with other settings "
            f"(saved -> now): {'; '.join(diff)}. Resume with the same flags, or start a new run "
            f"in another --output"
        )
    log(
        f"[train] resuming after epoch {state.epoch}/{cfg.epochs} "
        f"(best validation accuracy {state.best_acc:.4f} at epoch {state.best_epoch})"
    )
    return state


def train(cfg: TrainConfig, data: FERData | None = None, log=print) -> RunResult:
    """Train `cfg.model` with `cfg`'s recipe, restore the best validation epoch, evaluate
    validation and (once) test.

    After every epoch the whole run is saved to `<cfg.output>/training_state.pt`; `cfg.resume`
    continues from there. Ctrl-C stops training but keeps the best weights so far (and the state,
    so the run can still be resumed)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    use_bf16 = cfg.bf16 and device.type == "cuda"
    use_compile = compile_pays_off(cfg.model, device) if cfg.compile is None else cfg.compile
    log(
        f"[train] device {device} ({device_description(device)}); bf16 {use_bf16}, "
        f"channels_last {cfg.channels_last}, compile {use_compile}"
    )
    state_path = Path(cfg.output) / STATE_FILE
    state = start_or_resume(cfg, state_path, log)  # before loading data: fail fast
    # weights, two Adam moments, the weight average and the best epoch's copy, in float32
    prepare_output(cfg.output, state_bytes=5 * 4 * sum(p.numel() for p in MODELS[cfg.model]().parameters()))
    if data is None:
        data = load_fer2013(cfg.dataset, seed=cfg.seed, revision=cfg.revision, log=log)
    x_train, y_train = data.x_train, data.y_train
    if cfg.limit:
        x_train, y_train = x_train[: cfg.limit], y_train[: cfg.limit]
    log(f"[data] {data.summary()}; training on {len(x_train):,} images")

    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = MODELS[cfg.model]().to(device, memory_format=memory_format)
    step_model = torch.compile(model) if use_compile else model  # save `model`, never this
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[model] {type(model).__name__}: {n_params:,} parameters")
    n = len(x_train)
    # Drop a last partial batch (BatchNorm dislikes a batch of 1); tiny data gets one short step.
    steps_per_epoch = max(1, n // cfg.batch_size)
    opt, sched = build_optimizer(cfg, model, steps_per_epoch)
    ema = EMA(model, cfg.ema) if cfg.ema else None
    shipped = ema.module if ema else model  # the weights that are validated, selected, shipped
    # The whole training split lives on the device as uint8 (about 66 MB): no DataLoader, no
    # workers, no host-to-device copy per step.
    X, Y = x_train.to(device), y_train.to(device)
    soft = teacher_targets(cfg, x_train, log).to(device) if cfg.teacher else None  # (N, 7)
    # recorded now: the teacher's folder may hold another model by the time the card is read
    teacher = teacher_record(cfg.teacher) if cfg.teacher else None
    gen = torch.Generator(device=device).manual_seed(cfg.seed)  # permutations and augmentation
    if state.model is not None:
        state.restore(model, opt, sched, ema, gen)
    aug = AugmentConfig(max_rotation=cfg.rotation, scale=cfg.scale, erase=cfg.erase)
    log_every = 1 if device.type == "cpu" else 25  # each progress update syncs with the GPU
    autocast_dtype = torch.bfloat16 if use_bf16 else None
    if state.epoch < cfg.epochs and not state.done:
        log(
            "[train] per epoch: loss = mean label-smoothed cross-entropy over the epoch's augmented "
            f"batches (chance: ln 7 = 1.95); train acc on those batches; val acc of the "
            f"{'weight average (EMA)' if ema else 'weights'} that would ship; images/s of the "
            "training steps; seconds of training + validation"
        )

    interrupted = False
    try:
        while state.epoch < cfg.epochs and not state.done:
            epoch = state.epoch + 1
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
                if soft is not None:
                    t = cfg.distill_temperature
                    kd = F.kl_div(F.log_softmax(logits.float() / t, -1), soft[idx], reduction="batchmean")
                    loss = (1 - cfg.distill) * loss + cfg.distill * t * t * kd
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if cfg.schedule == "onecycle":
                    sched.step()
                if ema:
                    ema.update(model)
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
            train_seconds = time.perf_counter() - t0
            val_pred = predict_proba(shipped, data.x_val, device=device, autocast_dtype=autocast_dtype)
            val_acc = float((val_pred.argmax(-1) == data.y_val).float().mean())
            val_seconds = time.perf_counter() - t0 - train_seconds
            record = dict(
                epoch=epoch,
                train_loss=loss_sum.item() / seen,
                train_acc=correct.item() / seen,
                val_acc=val_acc,
                lr=lr_now,
                seconds=train_seconds,
                val_seconds=val_seconds,
                images=seen,
            )
            state.history.append(record)
            state.epoch, state.seconds = epoch, state.seconds + train_seconds + val_seconds
            improved = val_acc > state.best_acc
            if improved:
                state.best_acc, state.best_epoch, state.bad_epochs = val_acc, epoch, 0
                state.best_weights = {
                    k: v.detach().to("cpu", copy=True) for k, v in shipped.state_dict().items()
                }
            else:
                state.bad_epochs += 1
            state.done = bool(cfg.patience and state.bad_epochs >= cfg.patience)
            state.capture(model, opt, sched, ema, gen)
            state.save(state_path)
            log(
                f"epoch {epoch:3d} | loss {record['train_loss']:.4f} | train acc {record['train_acc']:.4f} "
                f"| val acc {val_acc:.4f}{' *' if improved else '  '} | lr {lr_now:.2e} "
                f"| {seen / train_seconds:,.0f} img/s | {train_seconds:.1f}s + {val_seconds:.1f}s"
            )
            if state.done:
                log(f"[train] early stop: no better validation accuracy for {cfg.patience} epochs")
    except KeyboardInterrupt:
        interrupted = True
        log(
            f"\n[train] interrupted: keeping the best weights so far (epoch {state.best_epoch}); "
            f"`--resume` continues from epoch {state.epoch}"
        )
    if state.best_weights is None:
        raise RuntimeError("training stopped before the first epoch finished: nothing to save")

    log(
        f"[train] best validation accuracy {state.best_acc:.4f} at epoch {state.best_epoch}; "
        f"{state.seconds:.1f}s of training and validation in {len(state.history)} epochs"
    )

    # Final evaluation on a CPU copy in float32: the numbers any user can reproduce. The
    # temperature and the "uncertain" threshold are fitted on validation, then measured on test.
    log("[eval] calibrating on validation, then scoring validation and test, plain and mirrored")
    raw = MODELS[cfg.model]()
    raw.load_state_dict(state.best_weights)
    has_test = data.x_test is not None
    calibration = calibration_report(
        predict_logits(raw, data.x_val),
        data.y_val,
        predict_logits(raw, data.x_test) if has_test else None,
        data.y_test,
    )
    best = MODELS[cfg.model](
        temperature=calibration["temperature"], uncertain_below=calibration["uncertain_below"]
    )
    best.load_state_dict(state.best_weights)
    best = best.eval()
    metrics: dict = {"validation": evaluate(best, data.x_val, data.y_val, progress="evaluating validation")}
    if has_test:  # the one and only test look
        metrics["test"] = evaluate(best, data.x_test, data.y_test, progress="evaluating test")
    metrics["calibration"] = calibration
    history = state.history
    epoch_seconds = sum(h["seconds"] for h in history)
    metrics.update(
        best_epoch=state.best_epoch,
        epochs_run=len(history),
        interrupted=interrupted,
        train_seconds=state.seconds,  # wall clock of all epochs, validation passes included
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
    if teacher:
        metrics["teacher"] = teacher
    for split in ("validation", "test"):
        if split in metrics:
            m = metrics[split]
            log(
                f"[eval] {split}: accuracy {m['accuracy']:.4f} (flip TTA {m['accuracy_tta']:.4f}), "
                f"macro-F1 {m['macro_f1']:.4f}"
            )
    log(
        f"[eval] temperature {calibration['temperature']:.3f}; uncertain below "
        f"{calibration['uncertain_below']:.3f}"
        + (
            f"; test ECE {calibration['test']['ece_before']:.4f} -> {calibration['test']['ece_after']:.4f}"
            if has_test
            else ""
        )
    )
    if note := no_signal_note(calibration["temperature"], calibration["uncertain_below"]):
        log(f"[eval] {note}")
    return RunResult(best, history, metrics, cfg, data)


# ---------------------------------------------------------------------------------------------
# the Hub folder


def write_model_folder(result: RunResult, output: str | Path) -> Path:
    """Write everything `push_to_hub` would upload: weights, config, model card, metrics,
    history, training arguments and figures.

    Atomically: the files are written into a hidden folder beside `output`, which then takes its
    place in one rename, so a crash or a full disk never leaves a half-written folder that looks
    like a model. Files of `output` the new folder lacks (the training state, a log) move along."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staged.chmod(0o777 & ~umask)  # mkdtemp makes it private; a model folder is not
        _write_model_files(result, staged)
        _replace_folder(out, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return out


def _write_model_files(result: RunResult, out: Path) -> None:
    from .card import build_model_card
    from .plots import plot_confusion_matrix, plot_history, plot_reliability

    cfg = result.config
    to_save = result.model
    if cfg.save_dtype == "float16":
        to_save = copy.deepcopy(result.model).half()
    to_save.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    (out / "history.json").write_text(json.dumps(result.history, indent=2))
    (out / "training_args.json").write_text(json.dumps(_portable(asdict(cfg)), indent=2))
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
    if "test" in result.metrics.get("calibration", {}):
        plot_reliability(result.metrics["calibration"]["test"], out / "reliability_test.png")
    build_model_card(result.metrics, _portable(asdict(cfg)), type(result.model)).save(out / "README.md")


def _replace_folder(out: Path, staged: Path) -> None:
    if not out.exists():
        os.replace(staged, out)
        return
    for entry in out.iterdir():
        if not (staged / entry.name).exists() and not entry.name.startswith(TEMP_PREFIX):
            os.replace(entry, staged / entry.name)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    os.replace(staged, out)
    shutil.rmtree(old, ignore_errors=True)


# Settings that name a place on the training machine, recorded relative to where the run started.
_PATH_SETTINGS = ("dataset", "teacher", "output")


def _portable(config: dict) -> dict:
    """`config` with absolute local paths made relative to the working directory: the record
    says how the run was made, not how the machine that made it is laid out."""
    out = dict(config)
    for key in _PATH_SETTINGS:
        value = out.get(key)
        if value and os.path.isabs(value):
            out[key] = os.path.relpath(value)
    return out


# ---------------------------------------------------------------------------------------------
# command line


def _by_recipe(name: str) -> str:
    """'reference X, strong Y, fast Z': each recipe's value of TrainConfig field `name`."""
    base = asdict(TrainConfig())
    return ", ".join(f"{r} {RECIPES[r].get(name, base[name])}" for r in RECIPES)


# Flags that change where or how fast a run goes, or what happens to its folder, not what it learns
_NOT_REPRODUCED = {"device", "threads", "compile", "output", "resume", "push", "repo_id", "private"}


def reproduce_command(config: dict) -> str:
    """The train_hub.py command line that re-runs the training `config` (a TrainConfig as a dict):
    the recipe plus every flag whose value differs from that recipe's."""
    recipe = {**asdict(TrainConfig()), **RECIPES[config["recipe"]]}
    always = ("model", "recipe", "dataset", "epochs", "seed")
    parts = ["python train_hub.py"]
    for action in build_parser()._actions:
        name = action.dest
        if name not in config or name in _NOT_REPRODUCED or not action.option_strings:
            continue
        value = config[name]
        if name in always or (value != recipe.get(name) and value is not None):
            parts.append(
                f"{action.option_strings[0]} {value:g}"
                if isinstance(value, float)
                else f"{action.option_strings[0]} {value}"
            )
    return " ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    # Recipe flags default to None so that "not given" can be told apart from "given": the recipe
    # fills them in (config_from_args), and the help text says each recipe's value instead.
    p = argparse.ArgumentParser(
        prog="train_hub.py",
        description="Train a FER-2013 expression CNN, evaluate it, and write (and optionally push) "
        "a Hugging Face Hub model folder. The training state is saved after every epoch: "
        "re-run the same command with --resume to continue an interrupted run.",
    )
    g = p.add_argument_group("model and data")
    g.add_argument(
        "--model", choices=list(MODELS), default="custom-cnn", help="architecture (default: custom-cnn)"
    )
    g.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"Hub dataset id or local folder laid out like one (data/train-*.parquet, ...) "
        f"(default: {DEFAULT_DATASET})",
    )
    g.add_argument(
        "--revision",
        default=None,
        help=f"dataset commit to load (default: {DEFAULT_REVISION} for {DEFAULT_DATASET}, "
        "the latest commit for any other dataset)",
    )
    g.add_argument(
        "--limit", type=int, default=None, help="train on the first N training images only (default: all)"
    )
    g = p.add_argument_group("recipe (flags below override the recipe's values)")
    g.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="reference",
        help="reference: the published recipe (default); strong: stronger augmentation, one-cycle "
        "and a weight average, what the shipped checkpoints use; fast: large-batch GPU recipe",
    )
    g.add_argument("--epochs", type=int, default=None, help=f"maximum epochs ({_by_recipe('epochs')})")
    g.add_argument(
        "--batch-size", type=int, default=None, help=f"images per step ({_by_recipe('batch_size')})"
    )
    g.add_argument("--lr", type=float, default=None, help=f"peak learning rate ({_by_recipe('lr')})")
    g.add_argument(
        "--patience",
        type=int,
        default=None,
        help=f"early-stopping patience in epochs, 0 = off ({_by_recipe('patience')})",
    )
    g.add_argument(
        "--ema", type=float, default=None, help=f"weight-average decay, 0 = off ({_by_recipe('ema')})"
    )
    g.add_argument(
        "--weight-decay", type=float, default=None, help=f"weight decay ({_by_recipe('weight_decay')})"
    )
    g.add_argument(
        "--rotation", type=float, default=None, help=f"random rotation, +- degrees ({_by_recipe('rotation')})"
    )
    g.add_argument(
        "--scale", type=float, default=None, help=f"random zoom, +- fraction, 0 = off ({_by_recipe('scale')})"
    )
    g.add_argument(
        "--erase",
        type=float,
        default=None,
        help=f"probability of erasing a random patch, 0 = off ({_by_recipe('erase')})",
    )
    g.add_argument(
        "--teacher",
        default=None,
        help="distil from this trained model folder (its soft targets join the loss; default: none)",
    )
    g.add_argument(
        "--distill",
        type=float,
        default=None,
        help="weight of the distillation loss with --teacher (default: 0.5)",
    )
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the training step (default: where measured to pay off: on CUDA, "
        "and for cnn-model2 on a CPU)",
    )
    g = p.add_argument_group("system")
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="where to train (default: auto = cuda, then mps, then cpu)",
    )
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: one per core)")
    g.add_argument(
        "--seed", type=int, default=0, help="seed of initialization, order and augmentation (default: 0)"
    )
    g.add_argument("--output", default="out", help="folder to write the Hub model folder into (default: out)")
    g.add_argument(
        "--save-dtype",
        choices=["float32", "float16"],
        default="float32",
        help="dtype of model.safetensors; float16 halves its size (default: float32)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue the unfinished run in --output from its training_state.pt (same flags)",
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
    for name in ("epochs", "batch_size", "limit", "threads"):
        value = getattr(args, name)
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
    except (ValueError, RuntimeError, FileNotFoundError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
