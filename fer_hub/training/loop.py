"""Train a FER-2013 CNN, evaluate it, and write a Hub-ready model folder (optionally pushed).

    python train_hub.py --model custom-cnn --dataset ../shared/fer2013 --output out
    python train_hub.py --model cnn-model2 --recipe fast --device cuda --push --repo-id ORG/NAME

Three recipes (`RECIPES` in `config.py`). `reference` is the published one: batch 64, Adam 5e-4 (weight decay
1e-4), StepLR(5, 0.5), early stopping (patience 5) on validation accuracy, at most 100 epochs.
`strong` trains the shipped checkpoints: stronger augmentation, AdamW, one-cycle and a weight
average (EMA). `fast` is for a GPU: large batches and one-cycle. Every recipe runs the forward
pass in bf16 where the hardware computes it natively (a GPU, recent CPUs). All keep the decoded
dataset on the training device as uint8 and augment whole batches there
(`fer_hub.training.augment`), select the best epoch on validation, and touch the test split exactly once,
at the end. The whole run state is saved after every epoch (`fer_hub.training.state`): `--resume`
continues a killed run and ends with the weights an unbroken run would have.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import InputError, RunError
from ..hardware import cpu_features_text, cpu_name
from ..labels import EMOTIONS
from ..models import MODELS
from ..preprocess import normalize
from ..quality import sharpness
from .augment import AugmentConfig, augment_batch
from .batchnorm import refresh_batchnorm
from .calibration import bias_note, calibration_report, no_signal_note
from .config import RESUME_MAY_CHANGE, TrainConfig, folders
from .data import FERData, load_fer2013
from .ema import EMA
from .evaluate import calibration_of, logit_passes, metrics_of, predict_proba, scored, tta_is_better
from .state import STATE_FILE, TrainState, config_differences, interrupts_deferred, prepare_output

__all__ = ["Run", "RunResult", "prepare_run", "train_step", "train", "end_epoch", "final_report"]


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible to torch (use --device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device mps: Apple MPS is not available here (use --device auto or cpu)")
    return torch.device(name)


def compile_pays_off(device: torch.device) -> bool:
    """Whether torch.compile speeds up training on `device`, as
    `benchmarks/bench_train.py --speed` measures it (README, "Speed"): on CUDA it pays for both
    models; on a CPU for neither (its seconds of compiling buy no faster step, in float32 or bf16)."""
    return device.type == "cuda"


def bf16_pays_off(device: torch.device) -> bool:
    """Whether bf16 autocast speeds up training on `device`: on CUDA, and on a CPU whose vector
    units compute bf16 natively (AVX-512 BF16, AMX), where oneDNN's bf16 convolutions about
    double CnnModel2's and CustomCNN's training steps (`benchmarks/bench_train.py --speed`).
    Elsewhere a CPU would emulate bf16, slower than float32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    if hasattr(torch.cpu, "get_capabilities"):
        caps = torch.cpu.get_capabilities()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    # torch before get_capabilities (the floor in pyproject is older)
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def device_description(device: torch.device) -> str:
    """Human-readable hardware name, for logs and the model card."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    # the extensions decide the speed a card's training time was reached at (and whether bf16 paid)
    return f"{cpu_name()} ({torch.get_num_threads()} threads; {cpu_features_text()})"


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
    """Soft targets (N, 7) in EMOTIONS order: each teacher's temperature-softened probabilities
    on the un-augmented training images, averaged with their mirror images, then over the
    teachers (an ensemble's mean probabilities, Hinton et al. 2015)."""
    from ..models import load_model

    t = cfg.distill_temperature
    teachers = []
    for folder in folders(cfg.teacher):  # all of them before any pass: a bad folder fails fast
        try:
            teachers.append((folder, load_model(folder)))
        except (FileNotFoundError, ValueError, OSError) as e:
            raise InputError(f"--teacher {folder}: {e}") from None
    targets = []
    for folder, teacher in teachers:
        order = [list(teacher.labels).index(e) for e in EMOTIONS]
        log(f"[distill] soft targets from {folder} ({type(teacher).__name__}), T={t}")
        plain, mirror = logit_passes(teacher, x, progress="teacher targets")
        targets.append((((plain / t).softmax(-1) + (mirror / t).softmax(-1)) / 2)[:, order])
    return torch.stack(targets).mean(0)


def soft_targets(cfg: TrainConfig, x: torch.Tensor, saved: torch.Tensor | None, log=print) -> torch.Tensor:
    """The targets a resumed run saved at its start, or the teachers' (`teacher_targets`)."""
    if saved is not None and saved.shape == (len(x), len(EMOTIONS)):
        log(
            f"[distill] soft targets of {len(folders(cfg.teacher))} teacher(s) as the run saved them at its start"
        )
        return saved
    return teacher_targets(cfg, x, log)


def folder_record(folder: str | Path) -> dict:
    """What identifies a model folder the run read (a distillation teacher, a warm start) once it has moved on: its architecture,
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
            raise RunError(
                f"{state_path.parent} holds an unfinished run ({saved.epoch}/{saved.config['epochs']} "
                f"epochs of {saved.config['model']}); pass --resume to continue it, or delete "
                f"{state_path.name} there (or pick another --output) to start afresh"
            )
        return TrainState(config=asdict(cfg))
    if not state_path.exists():
        finished = (state_path.parent / "model.safetensors").exists()
        raise RunError(
            f"--resume: no training state in {state_path.parent}"
            + (" (the run there has finished: its model folder is written)" if finished else "")
            + "; leave out --resume to start a new run"
        )
    state = TrainState.load(state_path)
    diff = config_differences(state.config, asdict(cfg), asdict(TrainConfig()), RESUME_MAY_CHANGE)
    if diff:
        raise RunError(
            f"--resume: the run in {state_path.parent} was started with other settings "
            f"(saved -> now): {'; '.join(diff)}. Resume with the same flags, or start a new run "
            f"in another --output"
        )
    log(
        f"[train] resuming after epoch {state.epoch}/{cfg.epochs} "
        f"(best validation accuracy {state.best_acc:.4f} at epoch {state.best_epoch})"
    )
    return state


@dataclass
class Run:
    """What one run holds while it trains: the model, its optimizer, the data on the device."""

    cfg: TrainConfig
    device: torch.device
    model: torch.nn.Module  # what is saved; `step_model` may be its compiled wrapper
    step_model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None
    X: torch.Tensor  # (N, 1, 48, 48) uint8 on the device
    Y: torch.Tensor
    soft: torch.Tensor | None  # (N, 7) distillation targets
    log_prior: torch.Tensor  # (7,)
    gen: torch.Generator  # permutations and augmentation
    aug: AugmentConfig
    steps_per_epoch: int
    memory_format: torch.memory_format
    use_bf16: bool

    @property
    def shipped(self) -> torch.nn.Module:
        """The weights that are validated, selected and shipped: the average when there is one."""
        return self.ema.module if self.ema else self.model


def prepare_run(
    cfg: TrainConfig,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    log=print,
    saved: TrainState | None = None,
) -> Run:
    """Model, optimizer, schedule, weight average and the training split on `cfg.device`.
    `saved`: the state of a run being resumed, whose weights replace `cfg.init`'s and whose
    distillation targets replace the teachers' passes: neither folder is read again."""
    device = resolve_device(cfg.device)
    use_bf16 = bf16_pays_off(device) if cfg.bf16 is None else cfg.bf16
    use_compile = compile_pays_off(device) if cfg.compile is None else cfg.compile
    log(
        f"[train] device {device} ({device_description(device)}); bf16 {use_bf16}, "
        f"channels_last {cfg.channels_last}, compile {use_compile}"
    )
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = MODELS[cfg.model]()
    resumed = saved is not None and saved.model is not None
    if cfg.init and not resumed:
        model.load_state_dict(init_weights(cfg))
        log(f"[model] starting from the weights of {cfg.init}")
    model = model.to(device, memory_format=memory_format)
    log(f"[model] {type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters")
    # Drop a last partial batch (BatchNorm dislikes a batch of 1); tiny data gets one short step.
    steps_per_epoch = max(1, len(x_train) // cfg.batch_size)
    opt, sched = build_optimizer(cfg, model, steps_per_epoch)
    return Run(
        cfg=cfg,
        device=device,
        model=model,
        step_model=torch.compile(model) if use_compile else model,  # save `model`, never this
        opt=opt,
        sched=sched,
        ema=EMA(model, cfg.ema) if cfg.ema else None,
        # The whole training split lives on the device as uint8 (about 66 MB): no DataLoader,
        # no workers, no host-to-device copy per step.
        X=x_train.to(device),
        Y=y_train.to(device),
        soft=soft_targets(cfg, x_train, saved.soft if resumed else None, log).to(device)
        if cfg.teacher
        else None,
        # log of each class's share of the training labels, for the logit-adjusted loss
        log_prior=torch.bincount(y_train, minlength=len(EMOTIONS))
        .clamp_min(1)
        .float()
        .div(len(y_train))
        .log()
        .to(device),
        gen=torch.Generator(device=device).manual_seed(cfg.seed),
        aug=AugmentConfig(max_rotation=cfg.rotation, scale=cfg.scale, erase=cfg.erase, degrade=cfg.degrade),
        steps_per_epoch=steps_per_epoch,
        memory_format=memory_format,
        use_bf16=use_bf16,
    )


def train_step(run: Run, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on training images `idx`: augment (and mix), forward, loss
    (label-smoothed and logit-adjusted, plus distillation), backward, step, schedule, weight
    average. Returns (loss, logits), detached."""
    cfg = run.cfg
    xb = augment_batch(run.X[idx].float().div_(255), run.aug, run.gen)  # (B, 1, 48, 48) in [0, 1]
    lam, mate = mixup_pairs(run, len(idx))
    if lam is not None:
        xb = lam.view(-1, 1, 1, 1) * xb + (1 - lam.view(-1, 1, 1, 1)) * xb[mate]
    xb = normalize(xb).contiguous(memory_format=run.memory_format)
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.use_bf16):
        logits = run.step_model(xb)
    logits = logits.float()
    loss = label_loss(logits, run.Y[idx], cfg, run.log_prior, lam, mate)
    if run.soft is not None:
        t = cfg.distill_temperature
        soft = run.soft[idx]
        if lam is not None:
            soft = lam.view(-1, 1) * soft + (1 - lam.view(-1, 1)) * soft[mate]
        kd = F.kl_div(F.log_softmax(logits / t, -1), soft, reduction="batchmean")
        loss = (1 - cfg.distill) * loss + cfg.distill * t * t * kd
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    if cfg.schedule == "onecycle":
        run.sched.step()
    if run.ema:
        run.ema.update(run.model)
    return loss.detach(), logits.detach()


def label_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    log_prior: torch.Tensor,
    lam: torch.Tensor | None = None,
    mate: torch.Tensor | None = None,
) -> torch.Tensor:
    """Label-smoothed cross-entropy, logit-adjusted by `cfg.logit_adjust` and mixed by mixup's
    (lam, mate) when given. Menon et al. 2021: the loss sees logits + tau * log prior, so the
    logits themselves learn the class-balanced decision, and inference uses them as they are."""
    adjusted = logits + cfg.logit_adjust * log_prior if cfg.logit_adjust else logits
    per_image = F.cross_entropy(adjusted, y, label_smoothing=cfg.label_smoothing, reduction="none")
    if lam is not None:
        mate_loss = F.cross_entropy(adjusted, y[mate], label_smoothing=cfg.label_smoothing, reduction="none")
        per_image = lam * per_image + (1 - lam) * mate_loss
    return per_image.mean()


def mixup_pairs(run: Run, n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """mixup (Zhang et al. 2018): each image's weight lam ~ Beta(a, a) and the batch position of
    the image it is blended with; (None, None) when mixup is off. Drawn from the run's generator
    (numpy's Beta seeded from it), so a resumed run mixes as an unbroken one would."""
    if not run.cfg.mixup:
        return None, None
    import numpy as np

    seed = int(torch.randint(0, 2**31 - 1, (1,), device=run.device, generator=run.gen))
    lam = np.random.default_rng(seed).beta(run.cfg.mixup, run.cfg.mixup, size=n)
    mate = torch.randperm(n, device=run.device, generator=run.gen)
    return torch.from_numpy(lam).float().to(run.device), mate


def init_weights(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The state dict of `cfg.init`, a trained model folder of `cfg.model`'s architecture."""
    from ..models import load_model

    try:
        source = load_model(cfg.init)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise InputError(f"--init {cfg.init}: {e}") from None
    if not isinstance(source, MODELS[cfg.model]):
        raise InputError(
            f"--init {cfg.init} holds a {type(source).__name__}, not a {MODELS[cfg.model].__name__} "
            f"(--model {cfg.model})"
        )
    return source.state_dict()


def train(cfg: TrainConfig, data: FERData | None = None, log=print) -> RunResult:
    """Train `cfg.model` with `cfg`'s recipe, restore the best validation epoch, evaluate
    validation and (once) test.

    After every epoch the whole run is saved to `<cfg.output>/training_state.pt`; `cfg.resume`
    continues from there. Ctrl-C stops training but keeps the best weights so far (and the state,
    so the run can still be resumed)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    state_path = Path(cfg.output) / STATE_FILE
    state = start_or_resume(cfg, state_path, log)  # before loading data: fail fast
    prepare_output(cfg.output, state_bytes=state_size(cfg.model))
    if data is None:
        data = load_fer2013(cfg.dataset, seed=cfg.seed, revision=cfg.revision, log=log)
    x_train, y_train = data.x_train[: cfg.limit or None], data.y_train[: cfg.limit or None]
    log(f"[data] {data.summary()}; training on {len(x_train):,} images")
    run = prepare_run(cfg, x_train, y_train, log, saved=state)
    if not state.sources:  # a new run, or a state saved before states kept them
        # recorded now: a teacher's or init's folder may hold another model by the time the card is read
        if cfg.teacher:
            state.sources["teacher"] = [folder_record(f) for f in folders(cfg.teacher)]
        if cfg.init:
            state.sources["init"] = folder_record(cfg.init)
    if run.soft is not None and state.soft is None:
        state.soft = run.soft.cpu()
    sources = state.sources
    if state.model is not None:
        state.restore(run.model, run.opt, run.sched, run.ema, run.gen)
    if state.epoch < cfg.epochs and not state.done:
        log(EPOCH_LINE_LEGEND.format(shipped="weight average (EMA)" if run.ema else "weights"))
    log_every = 1 if run.device.type == "cpu" else 25  # each progress update syncs with the GPU
    interrupted = False
    try:
        while state.epoch < cfg.epochs and not state.done:
            epoch, t0 = state.epoch + 1, time.perf_counter()
            run.model.train()
            perm = torch.randperm(len(x_train), device=run.device, generator=run.gen)
            loss_sum, correct, seen = torch.zeros((), device=run.device), 0, 0
            bar = tqdm(range(run.steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", unit="step", leave=False, dynamic_ncols=True, disable=None)  # fmt: skip
            for step in bar:
                idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                loss, logits = train_step(run, idx)
                loss_sum += loss * len(idx)
                correct += (logits.argmax(-1) == run.Y[idx]).sum()
                seen += len(idx)
                if step % log_every == 0 or step == run.steps_per_epoch - 1:
                    bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{int(correct) / seen:.3f}", lr=f"{run.opt.param_groups[0]['lr']:.2e}")  # fmt: skip
            lr_now = run.opt.param_groups[0]["lr"]
            if cfg.schedule == "step":
                run.sched.step()
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            train_seconds = time.perf_counter() - t0
            record = dict(epoch=epoch, train_loss=loss_sum.item() / seen, train_acc=int(correct) / seen, val_acc=None, lr=lr_now, seconds=train_seconds, val_seconds=None, images=seen)  # fmt: skip
            end_epoch(run, state, record, data, state_path, log)
    except KeyboardInterrupt:
        interrupted = True
        log(
            f"\n[train] interrupted: keeping the best weights so far (epoch {state.best_epoch}); "
            f"`--resume` continues from epoch {state.epoch}"
        )
    if state.best_weights is None:
        raise RunError("training stopped before the first epoch finished: nothing to save")
    return final_report(cfg, state, data, run, sources, interrupted, log)


def state_size(model: str) -> int:
    """Bytes of a training state: weights, two Adam moments, the weight average and the best
    epoch's copy, in float32. Counted on the meta device, which draws no random numbers: the
    run's own initialisation must stay the first draw after seeding."""
    with torch.device("meta"):
        return 5 * 4 * sum(p.numel() for p in MODELS[model]().parameters())


EPOCH_LINE_LEGEND = (
    "[train] per epoch: loss = mean label-smoothed cross-entropy over the epoch's augmented "
    "batches (chance: ln 7 = 1.95); train acc on those batches; val acc of the {shipped} that "
    "would ship; images/s of the training steps; seconds of training + validation"
)


def end_epoch(run: Run, state: TrainState, record: dict, data: FERData, state_path: Path, log=print) -> None:
    """Validate the weights that would ship, keep them if they are the best so far, decide on
    early stopping, and save the whole run to `state_path` before the epoch's line is printed."""
    cfg, t0 = run.cfg, time.perf_counter()
    if run.ema and cfg.ema_batchnorm:
        refresh_batchnorm(run.ema.module, run.X, faces=cfg.ema_batchnorm)
    # in float32 even when training runs in bf16: the accuracy that selects an epoch is that of
    # the weights as they ship
    val_pred = predict_proba(run.shipped, data.x_val, device=run.device)
    val_acc = float((val_pred.argmax(-1) == data.y_val).float().mean())
    record.update(
        val_acc=val_acc, val_seconds=time.perf_counter() - t0
    )  # in place: the keys keep their order
    with interrupts_deferred():  # the epoch is counted, kept and saved whole, or not at all
        state.history.append(record)
        state.epoch, state.seconds = (
            record["epoch"],
            state.seconds + record["seconds"] + record["val_seconds"],
        )
        improved = val_acc > state.best_acc
        if improved:
            state.best_acc, state.best_epoch, state.bad_epochs = val_acc, record["epoch"], 0
            state.best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in run.shipped.state_dict().items()
            }
        else:
            state.bad_epochs += 1
        state.done = bool(cfg.patience and state.bad_epochs >= cfg.patience)
        state.capture(run.model, run.opt, run.sched, run.ema, run.gen)
        state.save(state_path)
        log(
            f"epoch {record['epoch']:3d} | loss {record['train_loss']:.4f} | train acc {record['train_acc']:.4f} "
            f"| val acc {val_acc:.4f}{' *' if improved else '  '} | lr {record['lr']:.2e} "
            f"| {record['images'] / record['seconds']:,.0f} img/s | {record['seconds']:.1f}s + {record['val_seconds']:.1f}s"
        )
    if state.done:
        log(f"[train] early stop: no better validation accuracy for {cfg.patience} epochs")


def final_report(
    cfg: TrainConfig,
    state: TrainState,
    data: FERData,
    run: Run,
    sources: dict,  # "teacher": a record per folder; "init": one record
    interrupted: bool,
    log=print,
) -> RunResult:
    """Calibrate the best epoch's weights on validation, score validation and (the one look) test,
    and gather the metrics the model folder records."""
    log(
        f"[train] best validation accuracy {state.best_acc:.4f} at epoch {state.best_epoch}; "
        f"{state.seconds:.1f}s of training and validation in {len(state.history)} epochs"
    )
    # On a CPU copy in float32: the numbers any user can reproduce. The temperature, the class
    # bias and the "uncertain" threshold are fitted on validation, then measured on test.
    log("[eval] calibrating on validation, then scoring validation and test, plain and mirrored")
    raw = MODELS[cfg.model]()
    raw.load_state_dict(state.best_weights)
    splits = {"validation": (data.x_val, data.y_val)}
    if data.x_test is not None:  # the one and only test look
        splits["test"] = (data.x_test, data.y_test)
    # Each split's plain and mirrored logits, once: scoring, calibration and metrics all read them.
    passes = {split: logit_passes(raw, x, progress=f"evaluating {split}") for split, (x, _) in splits.items()}
    tta = tta_is_better(passes["validation"], data.y_val)  # the default scoring, chosen on validation
    calibration = calibration_report(
        scored(passes["validation"], tta),
        data.y_val,
        scored(passes["test"], tta) if "test" in passes else None,
        data.y_test,
        val_sharpness=sharpness(data.x_val),
        test_sharpness=None if data.x_test is None else sharpness(data.x_test),
    )
    calibration["tta"] = tta
    best = MODELS[cfg.model](
        temperature=calibration["temperature"],
        class_bias=calibration["class_bias"],
        uncertain_below=calibration["uncertain_below"],
        sharpness_range=calibration["sharpness_range"],
        tta=tta,
    )
    best.load_state_dict(state.best_weights)
    best = best.eval()
    labelled = calibration_of(best)
    metrics: dict = {split: metrics_of(*passes[split], y, **labelled) for split, (_, y) in splits.items()}
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
        device=str(run.device),
        hardware=device_description(run.device),
        torch_version=torch.__version__,
        # what --bf16 and --compile resolved to (their default is "where it pays")
        bf16=run.use_bf16,
        compiled=run.step_model is not run.model,
        n_train=len(run.X),
        n_validation=len(data.x_val),
        n_test=None if data.x_test is None else len(data.x_test),
        parameters=sum(p.numel() for p in best.parameters()),
        data_notes=data.notes,
    )
    metrics.update(sources)  # "teacher", "init": what folder_record saw at the start
    for split in ("validation", "test"):
        if split in metrics:
            m = metrics[split]
            log(
                f"[eval] {split}: accuracy {m['accuracy']:.4f} (flip TTA {m['accuracy_tta']:.4f}), "
                f"macro-F1 {m['macro_f1']:.4f}"
            )
    log(
        f"[eval] temperature {calibration['temperature']:.3f}; {bias_note(calibration)}; uncertain below "
        f"{calibration['uncertain_below']:.3f}"
        + (
            f"; test ECE {calibration['test']['ece_before']:.4f} -> {calibration['test']['ece_after']:.4f}"
            if "test" in calibration
            else ""
        )
    )
    if note := no_signal_note(calibration["temperature"], calibration["uncertain_below"]):
        log(f"[eval] {note}")
    return RunResult(best, history, metrics, cfg, data)
