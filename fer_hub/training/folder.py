"""Writing a model folder: the one place that puts files into it.

`write_model_folder` writes a finished run (weights, config, model card, metrics, history,
training arguments, figures) atomically; `calibrate_folder` refits an existing folder's
temperature and "uncertain" threshold, re-measures its accuracy as the current code scores it,
and rewrites what depends on them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..labels import EMOTIONS
from ..models import MODELS, load_model
from ..onnx_model import INT8_FILE, OnnxClassifier, metadata_of, quantize_int8, set_metadata
from ..quality import sharpness
from .batchnorm import BATCHNORM_FACES
from .calibration import bias_note, calibration_report, no_signal_note
from .card import build_model_card, hub_metadata
from .evaluate import calibration_of, choose_int8, logit_passes, metrics_of, scored, tta_is_better
from .plots import plot_confusion_matrix, plot_history, plot_reliability
from .state import TEMP_PREFIX

if TYPE_CHECKING:
    from .loop import RunResult
    from .soup import Soup

__all__ = [
    "write_model_folder",
    "write_soup_folder",
    "check_new_folder",
    "calibrate_folder",
    "write_calibration",
    "refresh_model_card",
]


# ---------------------------------------------------------------------------------------------
# the Hub folder


def write_model_folder(result: RunResult, output: str | Path) -> Path:
    """Write everything `push_to_hub` would upload: weights, config, model card, metrics,
    history, training arguments and figures.

    Atomically: the files are written into a hidden folder beside `output`, which then takes its
    place in one rename, so a crash or a full disk never leaves a half-written folder that looks
    like a model. Files of `output` the new folder lacks (the training state, a log) move along."""
    return _write_atomically(Path(output), lambda staged: _write_model_files(result, staged))


def _write_atomically(out: Path, write_files) -> Path:
    """Call `write_files(staged)` on a hidden folder beside `out`, then put it in `out`'s place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staged.chmod(0o777 & ~umask)  # mkdtemp makes it private; a model folder is not
        write_files(staged)
        _replace_folder(out, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return out


def check_new_folder(output: str | Path) -> Path:
    """`output` as a Path, when it names no file and no folder with anything in it: where a
    model folder made from others is written, so no file of an older model carries over."""
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{output} already exists and is not empty: give a new folder")
    return out


def write_soup_folder(soup: Soup, data, output: str | Path, command: str) -> Path:
    """Write `soup` (see `soup.greedy_soup`) as a model folder into `output`, which must not
    exist yet or be empty, and calibrate it there (which also measures it on test, once).

    The weights are saved in the precision of the best ingredient's, its training arguments
    describe the ingredients' recipe, and metrics.json records every ingredient: what `command`
    (the command line that made the soup) read and whether the soup kept it."""
    import torch

    from .loop import device_description

    out = check_new_folder(output)
    best = Path(soup.ingredients[0]["folder"])
    args = json.loads((best / "training_args.json").read_text())

    def write_files(staged: Path) -> None:
        model = copy.deepcopy(soup.model)
        (model.half() if args.get("save_dtype") == "float16" else model).save_pretrained(staged)
        _update_config(staged, hub_metadata(args["dataset"]))
        (staged / "training_args.json").write_text(json.dumps(args, indent=2))
        metrics = {
            "soup": {
                "command": command,
                "validation_accuracy": soup.validation_accuracy,
                "batchnorm_faces": BATCHNORM_FACES,
                "ingredients": soup.ingredients,
            },
            "interrupted": False,
            "hardware": device_description(torch.device("cpu")),
            "torch_version": torch.__version__,
            "n_train": len(data.x_train),
            "n_validation": len(data.x_val),
            "n_test": None if data.x_test is None else len(data.x_test),
            "parameters": sum(p.numel() for p in soup.model.parameters()),
            "data_notes": data.notes,
        }
        (staged / "metrics.json").write_text(json.dumps(metrics, indent=2))

    _write_atomically(out, write_files)
    calibrate_folder(out, data)
    return out


def _write_model_files(result: RunResult, out: Path) -> None:
    cfg = result.config
    to_save = result.model
    if cfg.save_dtype == "float16":
        to_save = copy.deepcopy(result.model).half()
    to_save.save_pretrained(out)
    _update_config(out, hub_metadata(cfg.dataset))
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    (out / "history.json").write_text(json.dumps(result.history, indent=2))
    (out / "training_args.json").write_text(json.dumps(_portable(asdict(cfg)), indent=2))
    plot_history(result.history, out / "training_curves.png", title=f"{cfg.model} on FER-2013")
    _plot_figures(result.metrics, result.metrics.get("calibration", {}), cfg.model, out)
    build_model_card(result.metrics, _portable(asdict(cfg)), type(result.model)).save(out / "README.md")


def _plot_figures(measured: dict, calibration: dict, architecture: str, out: Path) -> None:
    """The confusion matrix of each split in `measured` and the test reliability diagram of
    `calibration`; the figure of a split not measured now is removed, as it would show another
    calibration's (`fer-hub calibrate --withhold-test`)."""
    for split in ("validation", "test"):
        path = out / f"confusion_matrix_{split}.png"
        if split in measured:
            plot_confusion_matrix(
                measured[split]["confusion_matrix"],
                EMOTIONS,
                path,
                title=f"{architecture} on FER-2013: {split}",
            )
        else:
            path.unlink(missing_ok=True)
    reliability = out / "reliability_test.png"
    if "test" in calibration:
        plot_reliability(calibration["test"], reliability)
    else:
        reliability.unlink(missing_ok=True)


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
_PATH_SETTINGS = ("dataset", "teacher", "init", "output")


def _portable(config: dict) -> dict:
    """`config` with absolute local paths made relative to the working directory: the record
    says how the run was made, not how the machine that made it is laid out."""
    out = dict(config)
    relative = lambda path: os.path.relpath(path) if os.path.isabs(path) else path  # noqa: E731
    for key in _PATH_SETTINGS:
        value = out.get(key)
        if isinstance(value, list):  # several teachers
            out[key] = [relative(v) for v in value]
        elif value:
            out[key] = relative(value)
    return out


# ---------------------------------------------------------------------------------------------
# calibrating a model folder


def calibrate_folder(folder: str | Path, data, log=print, *, class_bias: bool = True) -> dict:
    """Calibrate the model in `folder` on `data` (a FERData) in place; returns the report.
    `class_bias=False`: the temperature alone (no bias is tried). `data` without a test split
    (`fer-hub calibrate --withhold-test`, for choosing between candidates on validation alone)
    also removes the folder's test figures and plots: they described another calibration."""
    folder = Path(folder)
    model = load_model(folder)
    # Each split's plain and mirrored logits, once per classifier: every choice, fit and figure
    # below reads them.
    float_val = logit_passes(model, data.x_val)
    tta = tta_is_better(float_val, data.y_val)  # the default scoring, chosen on validation
    # Then the precision: the int8 export where it scores as well as the float weights, with
    # the calibration fitted on what it answers.
    int8 = _write_int8(model, folder, data.x_train)
    int8_val = logit_passes(int8, data.x_val)
    use_int8 = choose_int8(scored(float_val, tta), scored(int8_val, tta), data.y_val)
    checked = {
        k: float((scored(v, tta).argmax(-1) == data.y_val).float().mean())
        for k, v in (("float32", float_val), ("int8", int8_val))
    }
    scorer, val = (int8, int8_val) if use_int8 else (model, float_val)
    if not use_int8:
        (folder / INT8_FILE).unlink()
    test = None if data.x_test is None else logit_passes(scorer, data.x_test)
    report = {
        **calibration_report(
            scored(val, tta),
            data.y_val,
            None if test is None else scored(test, tta),
            data.y_test,
            val_sharpness=sharpness(data.x_val),
            test_sharpness=None if data.x_test is None else sharpness(data.x_test),
            labels=model.labels,
            class_bias=class_bias,
        ),
        "tta": tta,
        "int8": use_int8,
        "validation_accuracy_by_precision": checked,
    }
    write_calibration(folder, report)
    calibrated = load_model(folder)  # as config.json now says
    if use_int8:  # the export's own metadata says what config.json now says
        set_metadata(folder / INT8_FILE, metadata_of(calibrated))
    # The accuracy figures follow the same scoring code, so a folder measured by an older
    # version of it does not keep quoting figures its users no longer get.
    labelled = calibration_of(calibrated)
    measured = {"validation": metrics_of(*val, data.y_val, **labelled)}
    if test is not None:
        measured["test"] = metrics_of(*test, data.y_test, **labelled)
    if use_int8:  # what the float weights give with the same calibration: backend="onnx"/"torch"
        measured["float32_weights"] = _headline(model, data, float_val, labelled)
    _update_metrics(folder, measured, drop=() if test is not None else ("test",))
    _plot_figures(measured, report, model.ARCHITECTURE, folder)
    if (folder / "metrics.json").is_file() and (folder / "training_args.json").is_file():
        refresh_model_card(folder)  # a bare model folder has no card to refresh
    t = report["test"] if "test" in report else {}
    log(
        f"[calibrate] {folder}: temperature {report['temperature']:.3f}; {bias_note(report)}; uncertain below "
        f"{report['uncertain_below']:.3f} (validation coverage {report['validation']['coverage']:.1%})"
        + (
            f"; test ECE {t['ece_before']:.4f} -> {t['ece_after']:.4f}, NLL {t['nll_before']:.4f} -> "
            f"{t['nll_after']:.4f}, coverage {t['coverage']:.1%}"
            if t
            else ""
        )
    )
    if note := no_signal_note(report["temperature"], report["uncertain_below"]):
        log(f"[calibrate] {note}")
    return report


def _headline(model, data, val_passes, labelled: dict) -> dict:
    """Accuracy plain and with flip TTA, and macro-F1 with flip TTA, per split, of `model`."""
    passes = {"validation": (val_passes, data.y_val)}
    if data.x_test is not None:
        passes["test"] = (logit_passes(model, data.x_test), data.y_test)
    keys = ("accuracy", "accuracy_tta", "macro_f1_tta")
    return {
        split: {k: v for k, v in metrics_of(*logits, y, **labelled).items() if k in keys}
        for split, (logits, y) in passes.items()
    }


# Faces the int8 export's activation ranges are calibrated on: training faces (never
# validation, on which the export is then judged), seeded, and their mirror images.
INT8_CALIBRATION_FACES = 1024


def int8_calibration_faces(x_train):
    """The normalized faces (float32, (2N, 1, 48, 48)) an int8 export's activation ranges come
    from: INT8_CALIBRATION_FACES seeded training faces (uint8) and their mirror images."""
    import torch

    from ..preprocess import normalize

    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(x_train), generator=g)[:INT8_CALIBRATION_FACES]
    faces = normalize(x_train[pick])
    return torch.cat([faces, faces.flip(-1)]).numpy()


def _write_int8(model, folder: Path, x_train) -> OnnxClassifier:
    """`folder`/INT8_FILE: the int8 export of `model`, calibrated on training faces."""
    faces = int8_calibration_faces(x_train)
    quantize_int8(OnnxClassifier.from_torch(model).path, folder / INT8_FILE, faces, clip_outliers=True)
    return OnnxClassifier(folder / INT8_FILE)


def write_calibration(folder: Path, report: dict) -> None:
    """Temperature, threshold and the default scoring into config.json (where `from_pretrained`
    reads them), and the whole report into metrics.json."""
    keys = ("temperature", "class_bias", "uncertain_below", "sharpness_range", "tta", "int8")
    _update_config(folder, {k: report[k] for k in keys if k in report})
    _update_metrics(folder, {"calibration": report})


def _update_metrics(folder: Path, values: dict, drop: tuple[str, ...] = ()) -> None:
    """Set `values` in `folder`/metrics.json and remove the keys in `drop`, if the folder has one
    (a bare model folder has not)."""
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        kept = {k: v for k, v in json.loads(metrics_file.read_text()).items() if k not in drop}
        metrics = {**kept, **values}
        metrics_file.write_text(json.dumps(metrics, indent=2))


def _update_config(folder: Path, values: dict) -> None:
    """Set `values` in `folder`/config.json, written as the mixin writes it; the weights are not
    touched (re-saving the model would also rewrite model.safetensors)."""
    config_file = folder / "config.json"
    config = {**json.loads(config_file.read_text()), **values}
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))


def refresh_model_card(folder: str | Path) -> None:
    """Rewrite `folder`/README.md from its metrics.json, training_args.json and config.json, and
    bring the Hub metadata in its config.json up to date."""
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "training_args.json").read_text())
    architecture = json.loads((folder / "config.json").read_text())["architecture"]
    _update_config(folder, hub_metadata(config["dataset"]))
    build_model_card(metrics, config, MODELS[architecture]).save(folder / "README.md")
