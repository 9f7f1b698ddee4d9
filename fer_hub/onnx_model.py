"""ONNX: export a fer_hub model with its labels and calibration, check parity, run it without torch.

    fer-hub export space/checkpoints/custom-cnn --onnx custom-cnn.onnx

The file has a dynamic batch axis (input "image" (B, 1, 48, 48) normalized as in
`fer_hub.preprocess`, output "logits" (B, 7)) and carries in its metadata the label names, the
architecture, the temperature and the "uncertain" threshold, so `OnnxClassifier` (and
`Predictor.from_onnx`) need nothing else. Export is only reported done after onnxruntime's
probabilities match torch's within `PARITY_TOLERANCE` on random and real inputs.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import InputError, NotFoundError
from .scaling import bias_vector, calibrated_probabilities, check_class_bias

__all__ = [
    "PARITY_TOLERANCE",
    "export_onnx",
    "check_parity",
    "export_digest",
    "export_cache_path",
    "OnnxClassifier",
    "INT8_FILE",
    "quantize_int8",
    "set_metadata",
]

PARITY_TOLERANCE = 1e-4  # max |p_onnx - p_torch| over all classes and inputs

# A model folder's int8 export, beside its weights: what a CPU Predictor classifies with when the
# folder's config says `int8` (chosen on validation by `fer-hub calibrate`).
INT8_FILE = "model.int8.onnx"


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    check_inputs: torch.Tensor | None = None,
    metadata: dict[str, str] | None = None,
) -> dict:
    """Write `model` to `path` as ONNX with metadata (plus `metadata`); verify parity on random
    inputs plus `check_inputs` (normalized (N, 1, 48, 48), e.g. real faces). Returns the parity
    report; raises RuntimeError (and removes the file) if parity fails or is not a number."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    example = torch.zeros(2, 1, 48, 48)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, which needs
        # onnxscript; for two plain CNNs the old one is exact (the parity check below says so).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    meta = {**metadata_of(model), **(metadata or {})}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))

    g = torch.Generator().manual_seed(0)
    inputs = [("random", torch.randn(64, 1, 48, 48, generator=g).clamp(-1, 1))]
    if check_inputs is not None and len(check_inputs):
        inputs.append(("real", check_inputs))
    try:
        return check_parity(model, path, inputs)
    except RuntimeError:
        path.unlink(missing_ok=True)
        raise


def check_parity(
    model: torch.nn.Module, path: str | os.PathLike, inputs: list[tuple[str, torch.Tensor]]
) -> dict:
    """Max absolute difference of calibrated probabilities, onnxruntime vs torch, per input set."""
    onnx_model = OnnxClassifier(path)
    bias = bias_vector(onnx_model.class_bias, onnx_model.labels)
    report = {}
    with torch.inference_mode():
        for name, x in inputs:
            p_torch = calibrated_probabilities(model(x), onnx_model.temperature, bias)
            p_onnx = calibrated_probabilities(onnx_model(x), onnx_model.temperature, bias)
            report[name] = {"n": len(x), "max_abs_diff": float((p_torch - p_onnx).abs().max())}
    worst = max(r["max_abs_diff"] for r in report.values())
    if not worst < PARITY_TOLERANCE:  # NaN (a broken model) fails too
        raise RuntimeError(
            f"ONNX parity check failed: max |p_onnx - p_torch| = {worst:.2e} >= {PARITY_TOLERANCE:g} ({report})"
        )
    return report


# Bump when export_onnx changes what it writes: cached exports from before are then not reused.
EXPORT_FORMAT = 4
_DIGEST_KEY = "fer_hub.source_sha256"  # export_digest of the torch model, in cached exports
# The model attributes an export carries in its metadata besides the weights.
_DIGESTED = (
    "ARCHITECTURE",
    "labels",
    "temperature",
    "class_bias",
    "uncertain_below",
    "tta",
    "sharpness_range",
)


def export_digest(model: torch.nn.Module) -> str:
    """sha256 of everything an export of `model` depends on: weights, calibration, labels and the
    exporting versions. Stored inside each cached export, so a cache entry proves which model it is."""
    import hashlib

    import onnx

    h = hashlib.sha256()
    for key in _DIGESTED:
        h.update(repr(getattr(model, key, None)).encode())
    h.update(f"{torch.__version__} {onnx.__version__} {EXPORT_FORMAT}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def export_cache_path(model: torch.nn.Module, digest: str | None = None) -> Path:
    """Where `OnnxClassifier.from_torch` caches `model`'s export: a file named by its digest."""
    from .cache import default_cache_dir

    digest = digest or export_digest(model)
    name = getattr(model, "ARCHITECTURE", type(model).__name__)
    return default_cache_dir() / "onnx" / f"{name}-{digest[:32]}.onnx"


class OnnxClassifier:
    """A fer_hub model exported to ONNX, run by onnxruntime, usable where a torch model is:
    `clf(x)` maps a normalized float tensor (B, 1, 48, 48) to logits (B, 7)."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        from .onnx_session import cpu_session

        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"{path}: no such ONNX file")
        try:
            self.session = cpu_session(path, threads)
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors share no base class
            raise InputError(f"{path}: not an ONNX model onnxruntime can load ({type(e).__name__})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "fer_hub.labels" not in meta:
            raise InputError(f"{path}: not exported by fer_hub (no label names in its metadata)")
        self.metadata = dict(meta)
        self.labels = json.loads(meta["fer_hub.labels"])
        self.ARCHITECTURE = meta.get("fer_hub.architecture", "onnx")
        self.temperature = float(meta.get("fer_hub.temperature", 1.0))
        self.uncertain_below = float(meta.get("fer_hub.uncertain_below", 0.0))
        sharp = json.loads(meta.get("fer_hub.sharpness_range", "null"))  # older exports: none
        self.sharpness_range = None if sharp is None else [float(v) for v in sharp]
        bias = json.loads(meta.get("fer_hub.class_bias", "null"))  # older exports: none
        self.class_bias = check_class_bias(bias, self.labels)
        self.tta = bool(json.loads(meta.get("fer_hub.tta", "false")))
        self.path = path

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(self.session.run(["logits"], {"image": arr})[0])

    @classmethod
    def from_torch(
        cls, model: torch.nn.Module, *, threads: int | None = None, cache: bool = True
    ) -> OnnxClassifier:
        """Export `model` (parity-checked) and load it. With `cache`, the export is kept in
        `<fer_hub cache>/onnx/`, named by `export_digest(model)` and carrying that digest inside,
        so building a Predictor for the same model again skips the export. A cache entry is used
        only when the digest inside matches (a damaged or foreign file is exported anew); a cache
        that cannot be read or written costs only the export."""
        import shutil
        import tempfile

        digest = export_digest(model)
        cached = export_cache_path(model, digest) if cache else None
        if cached is not None:
            try:
                found = cls(cached, threads=threads) if cached.is_file() else None
            except (OSError, ValueError):  # unreadable, truncated, not ours
                found = None
            if found is not None and found.metadata.get(_DIGEST_KEY) == digest:
                return found
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(model, path, metadata={_DIGEST_KEY: digest})  # raises when parity fails
            if cached is not None:
                try:  # atomically: a concurrent reader sees the whole file or none
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    staged = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
                    shutil.copyfile(path, staged)
                    os.replace(staged, cached)
                    path = cached
                except OSError:  # a read-only cache: serve the fresh export from memory
                    pass
            return cls(path, threads=threads)  # the session holds the model in memory

    # The Predictor and the evaluation code treat a classifier like an nn.Module; these keep
    # that contract (onnxruntime runs on the CPU, in inference mode only).
    training = False

    def to(self, *_args, **_kwargs) -> OnnxClassifier:
        return self

    def eval(self) -> OnnxClassifier:
        return self

    def train(self, mode: bool = True) -> OnnxClassifier:
        return self

    def parameters(self):
        yield torch.empty(0)


def quantize_int8(
    float_onnx: str | os.PathLike,
    out: str | os.PathLike,
    faces,
    *,
    clip_outliers: bool = False,
    full_range: bool = False,
) -> None:
    """An int8 copy of a classifier export (weights per channel, activations per tensor,
    calibrated on `faces`, normalized (N, 1, 48, 48) float32): a quarter of the bytes and about
    twice the speed on a CPU, its metadata kept; its probabilities differ a little from the
    float model's, the same on every CPU (its weights use 7 bits, so no CPU's integer sums
    saturate). `clip_outliers` sets each activation's range from its 0.001st to 99.999th
    percentile rather than its extremes: the int8 labels of the photo path's copy (INT8_FILE,
    calibrated on FER-2013 training faces) then agree with the float model's on 98% of the
    validation faces, against 92% with the extremes (both shipped models). The browser's live
    view runs that same copy. `full_range` (8-bit weights) is exact only on CPUs with VNNI: it is
    there to measure what 7 bits avoid (`benchmarks/bench_int8.py`)."""
    import contextlib
    import io
    import logging
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            # Whole batches only: the percentile calibrator stacks them, and a short last one breaks it.
            size = min(64, len(faces))
            self.batches = iter(
                [{"image": faces[i : i + size]} for i in range(0, len(faces) - size + 1, size)]
            )

        def get_next(self):
            return next(self.batches, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a warning per BatchNorm it folds away
    try:
        # the percentile calibrator prints its progress: not ours to show
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(float_onnx), str(prepared))
            quantize_static(
                str(prepared),
                str(out),
                Faces(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # 7-bit weights: x86 CPUs without VNNI (AVX2 alone) multiply int8 pairs into
                # int16 sums that saturate with full-range weights, which moved 15% of the
                # shipped CnnModel2's validation labels off the float model's on such a CPU
                reduce_range=not full_range,
                calibrate_method=CalibrationMethod.Percentile if clip_outliers else CalibrationMethod.MinMax,
            )
    finally:
        root.setLevel(level)


def metadata_of(model: torch.nn.Module) -> dict[str, str]:
    """The fer_hub metadata an export of `model` carries: labels, architecture, calibration."""
    return {
        "fer_hub.architecture": getattr(model, "ARCHITECTURE", type(model).__name__),
        "fer_hub.labels": json.dumps(list(getattr(model, "labels", []))),
        "fer_hub.temperature": repr(float(getattr(model, "temperature", 1.0))),
        "fer_hub.uncertain_below": repr(float(getattr(model, "uncertain_below", 0.0))),
        "fer_hub.tta": json.dumps(bool(getattr(model, "tta", False))),
        "fer_hub.sharpness_range": json.dumps(getattr(model, "sharpness_range", None)),
        "fer_hub.class_bias": json.dumps(getattr(model, "class_bias", None)),
        "fer_hub.input": "image (B, 1, 48, 48): grayscale in [0, 1], then (x - 0.5) / 0.5",
    }


def set_metadata(path: str | os.PathLike, values: dict[str, str]) -> None:
    """Set `values` in the metadata of the ONNX file at `path` (after a recalibration)."""
    import onnx

    proto = onnx.load(str(path))
    kept = [(e.key, e.value) for e in proto.metadata_props if e.key not in values]
    del proto.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    staged = Path(path).with_name(f".{Path(path).name}.tmp")
    onnx.save(proto, str(staged))
    os.replace(staged, path)
