"""Whether a model folder's int8 export scores on this CPU as its float weights do.

    python benchmarks/bench_int8.py space/checkpoints/cnn-model2 [--dataset ../shared/fer2013]

On FER-2013 validation, with the folder's scoring (flip TTA where it chose it) and before any
class bias, it prints the accuracy of the float weights, of the folder's own `model.int8.onnx`,
and of two fresh int8 exports calibrated as `fer-hub calibrate` does: with 7-bit weights (what
it writes) and with 8-bit ones; and for each export the share of faces whose label is the float
model's. x86 CPUs without VNNI add pairs of int8 products into int16 and saturate with 8-bit
weights; the CPU's flags are printed with the figures. Validation only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_hub.hardware import describe_cpu  # noqa: E402
from fer_hub.labels import EMOTIONS  # noqa: E402
from fer_hub.models import load_model  # noqa: E402
from fer_hub.onnx_model import INT8_FILE, OnnxClassifier, quantize_int8  # noqa: E402
from fer_hub.training.data import load_fer2013  # noqa: E402
from fer_hub.training.evaluate import logit_passes, scored  # noqa: E402
from fer_hub.training.folder import int8_calibration_faces  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--dataset", default="../shared/fer2013")
    args = ap.parse_args()
    data = load_fer2013(args.dataset, log=lambda *_: None)
    model = load_model(args.folder).eval()
    order = [list(model.labels).index(e) for e in EMOTIONS]  # by name, never by position
    tta = bool(getattr(model, "tta", False))

    def logits(scorer) -> torch.Tensor:
        return scored(logit_passes(scorer, data.x_val), tta)[:, order]

    reference = logits(model)
    exports = {}
    own = Path(args.folder) / INT8_FILE
    if own.is_file():
        exports[f"the folder's {INT8_FILE}"] = logits(OnnxClassifier(own))
    faces = int8_calibration_faces(data.x_train)
    with tempfile.TemporaryDirectory() as tmp:
        float_onnx = OnnxClassifier.from_torch(model).path
        for name, full_range in (
            ("fresh export, 7-bit weights", False),
            ("fresh export, 8-bit weights", True),
        ):
            out = Path(tmp) / f"{full_range}.onnx"
            quantize_int8(float_onnx, out, faces, clip_outliers=True, full_range=full_range)
            exports[name] = logits(OnnxClassifier(out))

    def accuracy(lg: torch.Tensor) -> float:
        return 100 * float((lg.argmax(-1) == data.y_val).float().mean())

    print(f"{describe_cpu()}; torch {torch.__version__}")
    print(
        f"{args.folder}, FER-2013 validation ({len(data.y_val):,} faces), {'flip TTA' if tta else 'plain'}, no class bias"
    )
    print(f"  float weights                        {accuracy(reference):.2f}%")
    for name, lg in exports.items():
        agree = 100 * float((lg.argmax(-1) == reference.argmax(-1)).float().mean())
        print(f"  {name:36s} {accuracy(lg):.2f}%, labels as the float weights' on {agree:.1f}% of faces")


if __name__ == "__main__":
    main()
