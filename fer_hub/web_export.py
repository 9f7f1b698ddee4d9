"""`fer-hub export-web OUT_DIR`: the static in-browser app as a folder to serve or upload.

The bundle is the page (`web/` in this repository), onnxruntime-web's WASM runtime copied from
its npm package (`web/package.json` pins it, `web/package-lock.json` locks it; `npm ci --prefix
web` installs it), the face detector and the classifiers as ONNX, and `fer_hub.json`: every
number the page's pipeline uses (detector passes and thresholds, anchors, FER-2013 framing,
normalization, tracking, each model's labels, temperature, "uncertain" threshold and scoring),
written here from the Python package, so the browser and Python cannot drift apart. Nothing is
fetched at run time from anywhere but the folder itself.

    fer-hub export-web build/web && python -m http.server -d build/web 8000
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError, NotFoundError

__all__ = ["WEB_DIR", "PAGE_FILES", "RUNTIME_FILES", "web_config", "store_exact_float16", "export_web"]

ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = ROOT / "web"
PAGE_FILES = ("index.html", "app.js", "pipeline.js", "imageops.js", "style.css")
# onnxruntime-web's WASM-only build (SIMD; threaded where the page is cross-origin isolated): the
# JS entry point and the runtime it loads.
RUNTIME_PACKAGE = WEB_DIR / "node_modules" / "onnxruntime-web"
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
# With --webgpu, also the WebGPU build (its runtime alone is 27 MB; on a CPU it is slower than
# the WASM build, so the page takes it only when the browser offers a GPU adapter).
WEBGPU_RUNTIME_FILES = (
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
)
DETECTOR_FILE = "models/retinaface.onnx"
STATIC_SPACE_TITLE = "fer_hub in your browser"
LIVE_DETECT_EVERY = 2


def web_config(
    models: list[dict], default_model: str, space_url: str | None = None, webgpu: bool = False
) -> dict:
    """What the page's pipeline needs to reproduce `Predictor`'s, read from the package."""
    from . import retinaface
    from .align import FER_FRAMING, crop_aligned
    from .faces import MIN_BOX, TILE_OVERLAP, WORK_SIZE, RetinaFaceDetector
    from .labels import EMOTIONS
    from .preprocess import IMAGE_SIZE, MEAN, STD
    from .tracking import FaceTracker

    detector = inspect.signature(RetinaFaceDetector.__init__).parameters
    tracker = FaceTracker()
    return {
        "emotions": list(EMOTIONS),
        "default_model": default_model,
        "runtimes": {
            "wasm": f"ort/{RUNTIME_FILES[0]}",
            "webgpu": f"ort/{WEBGPU_RUNTIME_FILES[0]}" if webgpu else None,
        },
        "models": models,
        "work_size": WORK_SIZE,
        "image_size": IMAGE_SIZE,
        "normalize": {"size": IMAGE_SIZE, "mean": float(MEAN), "std": float(STD)},
        "framing": {
            "eye_x": FER_FRAMING.eye_x,
            "eye_y": FER_FRAMING.eye_y,
            "eye_distance": FER_FRAMING.eye_distance,
            "max_size": inspect.signature(crop_aligned).parameters["max_size"].default,
        },
        "detector": {
            "file": DETECTOR_FILE,
            "mean_bgr": [float(v) for v in retinaface._MEAN_BGR],
            "strides": list(retinaface._STRIDES),
            "sizes": [list(s) for s in retinaface._SIZES],
            "variance": [retinaface._VAR_CENTER, retinaface._VAR_SIZE],
            "nms": inspect.signature(retinaface.RetinaFace.__init__).parameters["nms_threshold"].default,
            **{k: detector[k].default for k in ("detect_size", "full_size", "score", "hint", "tiled")},
            "tilts": list(detector["tilts"].default),
            "min_box": MIN_BOX,
            "tile_overlap": TILE_OVERLAP,
        },
        "tracking": {
            "iou_threshold": tracker.iou_threshold,
            "max_missed": tracker.max_missed,
            "smoothing": tracker.smoothing,
            "reach": tracker.reach,
        },
        # the live view: RetinaFace on every LIVE_DETECT_EVERY-th camera frame (and on every frame
        # while no face is in view), the faces kept in between; bench_web.py measures the rate
        "live": {"detect_every": LIVE_DETECT_EVERY},
        "space_url": space_url,
    }


def _runtime_files(webgpu: bool = False) -> list[Path]:
    dist = RUNTIME_PACKAGE / "dist"
    names = RUNTIME_FILES + (WEBGPU_RUNTIME_FILES if webgpu else ())
    missing = [f for f in names if not (dist / f).is_file()]
    if missing:
        raise NotFoundError(
            f"onnxruntime-web is not installed in {WEB_DIR / 'node_modules'} (missing {', '.join(missing)}): "
            f"run `npm ci --prefix {os.path.relpath(WEB_DIR)}` once (it installs the version web/package-lock.json pins)"
        )
    return [dist / f for f in names]


def _model_entry(source: str | os.PathLike, out: Path, calibration) -> dict:
    """Export one classifier (parity-checked against torch) into `out`/models, and its int8 copy
    for the live view; its metadata. The int8 copy is the model folder's own (INT8_FILE), which
    `fer-hub calibrate` checked on validation and the Predictor runs on a CPU; a source without
    one is quantized here on `calibration` (`calibration_faces()`)."""
    from .models import load_model
    from .onnx_model import INT8_FILE, export_onnx, quantize_int8

    try:
        model = load_model(source)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise InputError(f"--models {source}: {e}") from None
    name = getattr(model, "ARCHITECTURE", type(model).__name__)
    file, live_file = f"models/{name}.onnx", f"models/{name}.int8.onnx"
    export_onnx(model, out / file)
    if (Path(source) / INT8_FILE).is_file():
        shutil.copyfile(Path(source) / INT8_FILE, out / live_file)
    else:
        # Percentile ranges: with the extremes of these few faces' activations, one CnnModel2
        # agreed with its float labels on 84% of the validation faces, against 98%.
        quantize_int8(out / file, out / live_file, calibration, clip_outliers=True)
    store_exact_float16(out / file)
    config = Path(source) / "config.json"  # a local folder's Hub metadata names its dataset
    datasets = json.loads(config.read_text()).get("datasets", []) if config.is_file() else []
    return {
        "name": name,
        "title": type(model).__name__,
        "file": file,
        "labels": list(model.labels),
        "temperature": float(model.temperature),
        "class_bias": model.class_bias,  # by label name, or None
        "uncertain_below": float(model.uncertain_below),
        "sharpness_range": model.sharpness_range,
        "tta": bool(model.tta),
        "datasets": list(datasets),
        # the live view's classifier: the int8 export, one pass a frame (the tracker averages frames)
        "live": {"file": live_file, "tta": False},
    }


def store_exact_float16(path: str | os.PathLike) -> int:
    """Store each float32 weight of the ONNX file at `path` that float16 holds exactly (all of a
    checkpoint saved with --save-dtype float16) as float16 with a Cast back to float32 in the
    graph: half the download, and not one output changes (the runtime casts them back once, at
    load). Returns the bytes saved."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    path = Path(path)
    proto = onnx.load(str(path))
    before = path.stat().st_size
    casts, kept = [], []
    for init in proto.graph.initializer:
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if (
            values.dtype != np.float32
            or values.size < 1024
            or not np.array_equal(half.astype(np.float32), values)
        ):
            kept.append(init)
            continue
        kept.append(numpy_helper.from_array(half, f"{init.name}__float16"))
        casts.append(
            helper.make_node("Cast", [f"{init.name}__float16"], [init.name], to=onnx.TensorProto.FLOAT)
        )
    if not casts:
        return 0
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(casts + nodes)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return before - path.stat().st_size


def calibration_faces(count: int = 512, seed: int = 0):
    """(count, 1, 48, 48) normalized float32 faces to calibrate int8 activation ranges on: the faces
    RetinaFace finds in the Space's example photos, levelled and framed as the Predictor frames
    them, then shifted, zoomed, mirrored and lit differently (seeded): the faces a browser's
    camera gives, for a model folder that has no int8 export of its own."""
    import numpy as np
    from PIL import Image, ImageEnhance

    from .align import crop_aligned
    from .faces import RetinaFaceDetector
    from .images import load_image
    from .preprocess import IMAGE_SIZE, MEAN, STD

    detector, faces = RetinaFaceDetector(), []
    for photo in sorted((ROOT / "space" / "examples").glob("*.jpg")):
        rgb = load_image(photo, mode="RGB")
        faces += [
            crop_aligned(rgb.convert("L"), f.landmarks) for f in detector(rgb) if f.landmarks is not None
        ]
    if not faces:
        raise NotFoundError(f"no faces in {ROOT / 'space' / 'examples'} to calibrate the int8 export on")
    rng = np.random.default_rng(seed)
    out = np.empty((count, 1, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for i in range(count):
        face = faces[i % len(faces)]
        w = face.width
        s, (dx, dy) = rng.uniform(0.85, 1.0), rng.uniform(-0.07, 0.07, 2) * w
        box = ((w - s * w) / 2 + dx, (w - s * w) / 2 + dy, (w + s * w) / 2 + dx, (w + s * w) / 2 + dy)
        crop = face.crop(box).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.6, 1.4))
        crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(0.6, 1.4))
        out[i, 0] = (np.asarray(crop, np.float32) / 255 - MEAN) / STD
    return out


def export_web(
    out_dir: str | os.PathLike,
    models: Sequence[str | os.PathLike] | None = None,
    *,
    space_url: str | None = None,
    model_repos: Sequence[str] = (),
    webgpu: bool = False,
) -> dict:
    """Write the static app into `out_dir` (created; must be empty or absent): the page, the
    runtime, the detector, each classifier of `models` (folders or Hub ids; default: the two
    shipped ones, the first is the page's default) and fer_hub.json; `webgpu` adds onnxruntime-web's
    WebGPU build, used where the visitor's browser offers a GPU. Returns {path: bytes}."""
    from .models import SHIPPED_MODELS
    from .retinaface import WEIGHTS

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder; give a new or empty one")
    runtime = _runtime_files(webgpu)
    pages = [WEB_DIR / f for f in PAGE_FILES]
    if missing := [p.name for p in pages if not p.is_file()]:
        raise NotFoundError(f"the page's files are missing from {WEB_DIR}: {', '.join(missing)}")
    if models is None:
        models = [ROOT / "space" / "checkpoints" / name for name in SHIPPED_MODELS]
    if not models:
        raise InputError("give at least one model")
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-", dir=out.parent))
    try:
        for page in pages:
            shutil.copy2(page, staged / page.name)
        (staged / "ort").mkdir()
        for f in runtime:
            shutil.copy2(f, staged / "ort" / f.name)
        (staged / "models").mkdir()
        shutil.copy2(WEIGHTS, staged / DETECTOR_FILE)
        calibration = calibration_faces()  # once for all the models
        entries = [_model_entry(m, staged, calibration) for m in models]
        names = [e["name"] for e in entries]
        if len(set(names)) != len(names):
            raise InputError(
                f"two models of one architecture ({', '.join(names)}): the page names them by it"
            )
        config = web_config(entries, names[0], space_url, webgpu)
        (staged / "fer_hub.json").write_text(json.dumps(config, indent=1))
        (staged / "README.md").write_text(_space_card(entries, model_repos))
        staged.chmod(0o755)
        if out.exists():
            out.rmdir()
        os.replace(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}


def _space_card(entries: list[dict], model_repos: Sequence[str]) -> str:
    """README.md of a static Hub Space (`sdk: static`): the page is served as it is."""
    datasets = sorted({d for e in entries for d in e["datasets"]})
    lines = [
        "---",
        f"title: {STATIC_SPACE_TITLE}",
        "emoji: 🙂",
        "colorFrom: yellow",
        "colorTo: gray",
        "sdk: static",
        "app_file: index.html",
        "license: mit",
    ]
    if datasets:
        lines += ["datasets:", *[f"  - {d}" for d in datasets]]
    if model_repos:
        lines += ["models:", *[f"  - {r}" for r in model_repos]]
    # Cross-origin isolation lets onnxruntime-web run WASM threads (bench_web.py --isolated);
    # static Spaces send these headers when the card asks for them.
    lines += [
        "custom_headers:",
        "  cross-origin-embedder-policy: require-corp",
        "  cross-origin-opener-policy: same-origin",
        "  cross-origin-resource-policy: cross-origin",
    ]
    lines += ["tags:", "  - facial-expression-recognition", "  - onnxruntime-web", "---", ""]
    models = ", ".join(e["title"] for e in entries)
    lines += [
        f"# {STATIC_SPACE_TITLE}",
        "",
        f"fer_hub's expression classifiers ({models}) and its RetinaFace detector, running in the "
        "visitor's browser with onnxruntime-web: no photo or camera frame leaves their computer. "
        "Built by `fer-hub export-web`; `window.ferHub.analyze(image)` returns the same JSON as "
        "Python's `Predictor`.",
        "",
    ]
    return "\n".join(lines)
