"""The static in-browser app (web/, `fer-hub export-web`): its pixel arithmetic equals Pillow's
and OpenCV's (under Node), the bundle is self-contained and carries Python's own settings, and in
Debian's chromium `window.ferHub` gives Python's answers, asks nothing of any other host, and
runs the live camera."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the browser benchmark's static server and fake camera
from bench_web import serve  # noqa: E402

NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RUNTIME = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist"
needs_runtime = pytest.mark.skipif(
    not RUNTIME.is_dir(), reason="onnxruntime-web is not installed: npm ci --prefix web --ignore-scripts"
)


# ---------------------------------------------------------------------------------------------
# pixel arithmetic, under Node


def _smooth_image(rng, h, w, c=None):
    import cv2

    base = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2) + ((c,) if c else ()), dtype=np.uint8)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC).astype(int)
    return np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_browser_pixel_operations_equal_pillow_and_opencv(tmp_path):
    """Grayscale, Pillow's BOX and BILINEAR resize and affine warp exactly; OpenCV's area resize
    exactly at integer factors and within one grey level otherwise (OpenCV sums in float32)."""
    import cv2

    rng = np.random.default_rng(0)
    cases, expected, tolerance = [], [], []

    def add(op, arr, result, tol=0, **kw):
        h, w = arr.shape[:2]
        cases.append(
            dict(op=op, w=w, h=h, ch=1 if arr.ndim == 2 else arr.shape[2], data=arr.ravel().tolist(), **kw)
        )
        expected.append(np.asarray(result).ravel().astype(int))
        tolerance.append(tol)

    rgb = _smooth_image(rng, 37, 53, 3)
    add("gray", rgb, Image.fromarray(rgb).convert("L"))
    for h, w in [(191, 191), (100, 100), (60, 60), (130, 97)]:
        g = _smooth_image(rng, h, w)
        add("pil", g, Image.fromarray(g).resize((48, 48), Image.Resampling.BOX), ow=48, oh=48, kind="box")
    g = _smooth_image(rng, 40, 40)
    add(
        "pil",
        g,
        Image.fromarray(g).resize((48, 48), Image.Resampling.BILINEAR),
        ow=48,
        oh=48,
        kind="bilinear",
    )
    big = _smooth_image(rng, 300, 420, 3)
    add("pil", big, Image.fromarray(big).resize((205, 146), Image.Resampling.BILINEAR), ow=205, oh=146, kind="bilinear")  # fmt: skip
    for (h, w), (oh, ow), tol in [((480, 640), (240, 320), 0), ((333, 517), (206, 320), 1), ((1024, 768), (320, 240), 1)]:  # fmt: skip
        c = _smooth_image(rng, h, w, 3)
        add("area", c, cv2.resize(c, (ow, oh), interpolation=cv2.INTER_AREA), tol, ow=ow, oh=oh)
    for m in [
        (0.7, 0.1, -0.2, 0.05, 0.8, -0.1),
        (1.3, -0.2, 20.3, 0.2, 1.3, 10.7),
        (0.9, 0.3, 5, -0.3, 0.9, 40),
    ]:
        g = _smooth_image(rng, 90, 80)
        warped = Image.fromarray(g).transform((64, 64), Image.Transform.AFFINE, m, Image.Resampling.BILINEAR)
        add("affine", g, warped, ow=64, oh=64, m=list(m))
    (tmp_path / "in.json").write_text(json.dumps(cases))
    subprocess.run([NODE, str(ROOT / "tests" / "web_ops.mjs"), tmp_path / "in.json", tmp_path / "out.json"], check=True)  # fmt: skip
    got = json.loads((tmp_path / "out.json").read_text())
    for case, want, have, tol in zip(cases, expected, got, tolerance):
        diff = np.abs(np.asarray(have, int) - want)
        assert diff.max() <= tol, (case["op"], case.get("kind"), case["w"], case["h"], diff.max())


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_browser_sharpness_equals_pythons_so_both_call_the_same_faces_unfamiliar(tmp_path):
    from fer_hub.preprocess import preprocess
    from fer_hub.quality import sharpness

    rng = np.random.default_rng(1)
    crops = [_smooth_image(rng, 48, 48), rng.integers(0, 256, (48, 48), dtype=np.uint8)]
    crops += [
        np.asarray(Image.fromarray(crops[0]).resize((12, 12)).resize((48, 48))),
        np.full((48, 48), 7, np.uint8),
    ]
    cases = [dict(op="sharpness", w=48, h=48, ch=1, data=c.ravel().tolist()) for c in crops]
    (tmp_path / "in.json").write_text(json.dumps(cases))
    subprocess.run([NODE, str(ROOT / "tests" / "web_ops.mjs"), tmp_path / "in.json", tmp_path / "out.json"], check=True)  # fmt: skip
    got = [v for (v,) in json.loads((tmp_path / "out.json").read_text())]
    want = sharpness(preprocess([Image.fromarray(c) for c in crops])).tolist()
    assert got[:3] == pytest.approx(want[:3], abs=1e-4)
    assert got[3] is None and want[3] == float("-inf")  # a flat crop, -Infinity in JavaScript


# ---------------------------------------------------------------------------------------------
# the bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    if not RUNTIME.is_dir():
        pytest.skip("onnxruntime-web is not installed: npm ci --prefix web --ignore-scripts")
    from fer_hub.web_export import export_web

    out = tmp_path_factory.mktemp("web") / "bundle"
    export_web(out, space_url="https://huggingface.co/spaces/org/fer")
    return out


@pytest.mark.slow
@needs_runtime
def test_export_web_writes_a_self_contained_bundle_with_pythons_settings(bundle):
    from fer_hub.align import FER_FRAMING
    from fer_hub.labels import EMOTIONS
    from fer_hub.models import DEFAULT_MODEL, SHIPPED_MODELS, load_model
    from fer_hub.web_export import PAGE_FILES, RUNTIME_FILES

    for f in [*PAGE_FILES, *(f"ort/{r}" for r in RUNTIME_FILES), "models/retinaface.onnx", "README.md"]:
        assert (bundle / f).is_file(), f
    cfg = json.loads((bundle / "fer_hub.json").read_text())
    assert cfg["emotions"] == list(EMOTIONS) and cfg["default_model"] == DEFAULT_MODEL
    assert cfg["framing"]["eye_distance"] == FER_FRAMING.eye_distance
    assert [m["name"] for m in cfg["models"]] == list(SHIPPED_MODELS)
    for entry in cfg["models"]:
        model = load_model(ROOT / "space" / "checkpoints" / entry["name"])
        assert (
            entry["temperature"],
            entry["class_bias"],
            entry["uncertain_below"],
            entry["sharpness_range"],
            entry["tta"],
        ) == (
            model.temperature,
            model.class_bias,
            model.uncertain_below,
            model.sharpness_range,
            model.tta,
        )
        assert (bundle / entry["file"]).is_file()
    card = (bundle / "README.md").read_text()
    assert "sdk: static" in card and "app_file: index.html" in card
    assert "cross-origin-embedder-policy: require-corp" in card  # WASM threads on a static Space
    # nothing in the page points outside the folder
    for page in PAGE_FILES:
        text = (bundle / page).read_text()
        assert "cdn" not in text.lower() and "unpkg" not in text and "jsdelivr" not in text, page


@pytest.mark.slow
@needs_runtime
def test_bundled_classifiers_are_half_the_size_and_answer_exactly_as_the_float32_export(bundle, tmp_path):
    """The shipped weights are float16 values: stored as float16 (cast back at load), every
    logit is bit-for-bit the float32 export's."""
    import onnxruntime as ort
    import torch

    from fer_hub.models import load_model
    from fer_hub.onnx_model import export_onnx

    x = torch.randn(32, 1, 48, 48, generator=torch.Generator().manual_seed(0)).clamp(-1, 1).numpy()
    for name in ("cnn-model2", "custom-cnn"):
        full = tmp_path / f"{name}.onnx"
        export_onnx(load_model(ROOT / "space" / "checkpoints" / name), full)
        small = bundle / "models" / f"{name}.onnx"
        assert small.stat().st_size < 0.55 * full.stat().st_size, name

        def run(f):
            return ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]

        assert np.array_equal(run(small), run(full)), name


@pytest.mark.slow
@needs_runtime
def test_the_live_views_int8_classifiers_agree_with_the_float_models_on_fer2013_validation(
    bundle, shared_fer, tmp_path
):
    """The int8 exports the live view runs: each shipped folder's own, and one quantized at export
    for a folder without it (calibrated on the example photos' faces only). On the 3,589
    validation faces they give the float model's label on at least 95% and lose at most a point
    of accuracy."""
    import onnxruntime as ort

    from fer_hub.onnx_model import INT8_FILE
    from fer_hub.preprocess import normalize
    from fer_hub.training.data import load_fer2013
    from fer_hub.web_export import export_web

    bare = tmp_path / "cnn-model2"  # the shipped CnnModel2 without its int8 export
    shutil.copytree(
        ROOT / "space" / "checkpoints" / "cnn-model2", bare, ignore=shutil.ignore_patterns(INT8_FILE)
    )
    quantized = tmp_path / "bundle"
    export_web(quantized, [bare])
    data = load_fer2013(str(shared_fer), log=lambda *_: None)
    x, y = normalize(data.x_val).numpy(), data.y_val.numpy()
    for folder in (bundle, quantized):
        cfg = json.loads((folder / "fer_hub.json").read_text())
        for entry in cfg["models"]:
            assert entry["live"]["file"].endswith(".int8.onnx") and entry["live"]["tta"] is False

            def predict(f, folder=folder):
                s = ort.InferenceSession(str(folder / f), providers=["CPUExecutionProvider"])
                return np.concatenate(
                    [s.run(None, {"image": x[i : i + 512]})[0] for i in range(0, len(x), 512)]
                ).argmax(1)

            full, live = predict(entry["file"]), predict(entry["live"]["file"])
            assert (live == full).mean() >= 0.95, (folder.name, entry["name"])
            assert (live == y).mean() >= (full == y).mean() - 0.01, (folder.name, entry["name"])
            assert (folder / entry["live"]["file"]).stat().st_size < 0.6 * (
                folder / entry["file"]
            ).stat().st_size


def test_the_live_view_runs_the_model_folders_own_int8_export(tmp_path):
    """The live view and the Predictor on a CPU run one int8 file, the one `fer-hub calibrate`
    chose on validation, not a second quantization of the same weights."""
    from fer_hub.web_export import _model_entry

    folder = ROOT / "space" / "checkpoints" / "custom-cnn"
    (tmp_path / "models").mkdir()
    entry = _model_entry(folder, tmp_path, calibration=None)  # no faces: nothing is quantized
    assert (tmp_path / entry["live"]["file"]).read_bytes() == (folder / "model.int8.onnx").read_bytes()


@needs_runtime
def test_export_web_refuses_a_folder_in_use_and_names_the_missing_runtime(tmp_path, monkeypatch):
    from fer_hub import web_export
    from fer_hub.errors import InputError, NotFoundError

    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        web_export.export_web(used)
    assert (used / "keep.txt").read_text() == "mine"
    monkeypatch.setattr(web_export, "RUNTIME_PACKAGE", tmp_path / "nowhere")
    with pytest.raises(NotFoundError, match="npm ci --prefix"):
        web_export.export_web(tmp_path / "new")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------------------------
# in the browser


def in_browser(test):
    """Drives Debian's chromium through playwright; skipped cleanly without it."""
    for mark in (
        pytest.mark.browser,
        pytest.mark.slow,
        pytest.mark.skipif(
            CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
        ),
    ):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def site(bundle):
    """The bundle served as `python -m http.server` serves it: a plain static host."""
    server, url = serve(bundle)
    yield url
    server.shutdown()


def _launch(p, *args):
    quiet = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]  # fmt: skip
    return p.chromium.launch(executable_path=CHROMIUM, args=[*quiet, *args])


def _open(browser_, site, requests):
    page = browser_.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{site}/index.html")
    page.evaluate("window.ferHub.ready")
    return page


ANALYZE_JS = """async ([b64, model, detect]) => {
  const blob = await (await fetch('data:application/octet-stream;base64,' + b64)).blob();
  return await window.ferHub.analyze(blob, {model, detect});
}"""


def _photos(tmp_path) -> list[Path]:
    """The Space's example photos, one turned 20 degrees, one shrunk, a photo with no face, one
    stored sideways with an EXIF orientation, a grayscale JPEG and a 3000 x 2250 photo."""
    examples = [ROOT / "space" / "examples" / n for n in ("astronaut.jpg", "two_faces.jpg")]
    astronaut = Image.open(examples[0]).convert("RGB")
    tilted = tmp_path / "tilted.png"
    astronaut.rotate(20, resample=Image.Resampling.BICUBIC, fillcolor=(90, 90, 90)).save(tilted)
    small = tmp_path / "small.png"
    canvas = Image.new("RGB", (900, 700), (120, 130, 140))
    canvas.paste(astronaut.resize((140, 140)), (600, 400))
    canvas.save(small)
    empty = tmp_path / "no_face.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))).convert("RGB").save(empty)
    # a phone photo: pixels stored on their side, EXIF orientation 6 says how to turn them upright
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = tmp_path / "exif_rotated.jpg"
    astronaut.transpose(Image.Transpose.ROTATE_90).save(sideways, quality=92, exif=exif)
    gray = tmp_path / "gray.jpg"
    astronaut.convert("L").save(gray, quality=92)
    big = tmp_path / "big.jpg"  # larger than the 2048 px the Predictor works at
    canvas = Image.new("RGB", (3000, 2250), (150, 140, 130))
    canvas.paste(astronaut.resize((700, 700)), (1700, 900))
    canvas.save(big, quality=90)
    return [*examples, tilted, small, empty, sideways, gray, big]


@in_browser
@pytest.mark.parametrize("model", ["cnn-model2", "custom-cnn"])
def test_browser_gives_pythons_faces_boxes_and_probabilities(model, site, tmp_path, report):
    """Photos with detection and FER-2013 crops without: the same faces, boxes within a pixel,
    probabilities within 0.005 on photos and 1e-4 on crops, the same labels and "uncertain", and
    no request leaves the page's own host."""
    from playwright.sync_api import sync_playwright

    from fer_hub import Predictor

    # the page runs the float weights (`backend="onnx"`), with the model's scoring and calibration
    predictor = Predictor.from_pretrained(ROOT / "space" / "checkpoints" / model, backend="onnx")
    crops = sorted((ROOT / "tests" / "data" / "fer2013").glob("*.png"))
    worst, requests = 0.0, []
    with sync_playwright() as p:
        b = _launch(p, "--headless=new")
        try:
            page = _open(b, site, requests)
            for path, detect in [*((f, True) for f in _photos(tmp_path)), *((c, False) for c in crops)]:
                got = page.evaluate(ANALYZE_JS, [base64.b64encode(path.read_bytes()).decode(), model, detect])
                want = predictor(str(path), detect=detect)
                assert got["face_found"] == want["face_found"], path.name
                assert len(got["faces"]) == len(want["faces"]), path.name
                for g, w in zip(got["faces"], want["faces"]):
                    assert np.abs(np.subtract(g["box"], w["box"])).max() <= 1, (path.name, g["box"], w["box"])
                    diff = max(abs(g["probabilities"][e] - w["probabilities"][e]) for e in w["probabilities"])
                    worst = max(worst, diff)
                    # a crop is classified as it is; a photo's landmarks are float32 in Python and
                    # float64 here, and JPEG decoders differ by a grey level here and there
                    tol = 1e-4 if not detect else 0.005
                    assert diff <= tol, (path.name, diff)
                    assert g["label"] == w["label"] and g["uncertain"] == w["uncertain"], path.name
                    assert g["unfamiliar"] == w["unfamiliar"], path.name
        finally:
            b.close()
    host = site.split("//")[1]
    assert all(u.split("//")[1].startswith(host) for u in requests if u.startswith("http")), requests
    report(f"browser vs Python, {model}: largest probability difference {worst:.1e}")


@in_browser
def test_live_camera_boxes_the_face_and_reports_its_rate(site, tmp_path, report):
    from bench_live_browser import write_camera_clip
    from playwright.sync_api import sync_playwright

    clip = write_camera_clip(tmp_path / "camera.y4m", frames=60)
    with sync_playwright() as p:
        b = _launch(
            p,
            "--headless=new",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}",
        )
        try:
            context = b.new_context(permissions=["camera"])
            page = context.new_page()
            page.goto(f"{site}/index.html")
            page.evaluate("window.ferHub.ready")
            page.evaluate("window.ferHub.startCamera({model: 'custom-cnn'})")
            time.sleep(6)
            stats = page.evaluate("window.ferHub.stats()")
            headline = page.locator("#camera-chart .headline").inner_text()
            page.evaluate("window.ferHub.stopCamera()")
        finally:
            b.close()
    report(
        f"in-browser live view (custom-cnn, this machine, test run): {stats['fps']:.1f} frames/s, "
        f"{stats['lastMs']:.0f} ms a frame (detection {stats['detectMs']:.0f}, classification {stats['classifyMs']:.0f})"
    )
    assert stats["frames"] >= 3 and stats["fps"] > 0, stats
    assert stats["model"] == "custom-cnn" and stats["backend"] == "wasm", stats
    assert stats["classifier"] == "models/custom-cnn.int8.onnx", stats
    assert headline.split(" ")[0] in {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}, (
        headline
    )


@pytest.mark.slow
@needs_runtime
def test_fer_hub_export_web_command_writes_the_bundle_and_says_how_to_serve_it(tmp_path, capsys):
    from fer_hub.cli import main

    out = tmp_path / "site"
    assert main(["export-web", str(out), "--models", str(ROOT / "space" / "checkpoints" / "custom-cnn")]) == 0
    printed = capsys.readouterr().out
    assert "python -m http.server" in printed and "MB" in printed
    cfg = json.loads((out / "fer_hub.json").read_text())
    assert [m["name"] for m in cfg["models"]] == ["custom-cnn"] and cfg["default_model"] == "custom-cnn"
    assert main(["export-web", str(out)]) == 2  # in use: refused, nothing overwritten
    assert "not an empty folder" in capsys.readouterr().err


@in_browser
def test_an_isolated_host_gives_the_page_wasm_threads_and_the_same_answers(bundle, site, tmp_path):
    """Served with COOP/COEP (as the static Space's card asks), the page is cross-origin
    isolated, onnxruntime-web runs two threads, and the answers do not change."""
    from playwright.sync_api import sync_playwright

    server, isolated = serve(bundle, isolated=True)
    photo = base64.b64encode((ROOT / "space" / "examples" / "astronaut.jpg").read_bytes()).decode()
    answers = []
    try:
        with sync_playwright() as p:
            b = _launch(p, "--headless=new")
            try:
                for url in (site, isolated):
                    page = _open(b, url, [])
                    answers.append(
                        (
                            page.evaluate("self.crossOriginIsolated"),
                            page.evaluate("window.ferHub.stats().threads"),
                            page.evaluate(ANALYZE_JS, [photo, "cnn-model2", True]),
                        )
                    )
            finally:
                b.close()
    finally:
        server.shutdown()
    (plain_iso, plain_threads, plain), (iso, threads, threaded) = answers
    assert not plain_iso and plain_threads == 1
    assert iso and threads > 1  # min(4, the cores the browser reports)
    assert threaded["faces"][0]["box"] == plain["faces"][0]["box"]
    for e, p in plain["faces"][0]["probabilities"].items():
        assert threaded["faces"][0]["probabilities"][e] == pytest.approx(p, abs=1e-5)


@in_browser
@needs_runtime
def test_a_webgpu_bundle_runs_on_the_gpu_the_browser_offers_and_gives_pythons_answers(tmp_path):
    """With --webgpu the page takes the WebGPU build where the browser offers an adapter (here
    Chromium's software one, SwiftShader) and still gives Python's answers; ?backend=wasm and
    a browser without WebGPU keep the WASM build."""
    from playwright.sync_api import sync_playwright

    from fer_hub import Predictor
    from fer_hub.web_export import export_web

    bundle = tmp_path / "bundle"
    export_web(bundle, [ROOT / "space" / "checkpoints" / "custom-cnn"], webgpu=True)
    server, url = serve(bundle)
    photo = ROOT / "space" / "examples" / "astronaut.jpg"
    want = Predictor.from_pretrained(ROOT / "space" / "checkpoints" / "custom-cnn", backend="onnx")(
        str(photo)
    )
    b64 = base64.b64encode(photo.read_bytes()).decode()
    seen = {}
    try:
        with sync_playwright() as p:
            for name, flags, query in [
                ("gpu", ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"], ""),
                (
                    "asked for wasm",
                    ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"],
                    "?backend=wasm",
                ),
                ("no gpu", [], ""),
            ]:
                b = _launch(p, "--headless=new", *flags)
                try:
                    page = b.new_page()
                    page.goto(f"{url}/index.html{query}")
                    page.evaluate("window.ferHub.ready")
                    seen[name] = (
                        page.evaluate("window.ferHub.stats().backend"),
                        page.evaluate(ANALYZE_JS, [b64, "custom-cnn", True]),
                    )
                finally:
                    b.close()
    finally:
        server.shutdown()
    assert {k: v[0] for k, v in seen.items()} == {"gpu": "webgpu", "asked for wasm": "wasm", "no gpu": "wasm"}
    for name, (_, got) in seen.items():
        (g,), (w,) = got["faces"], want["faces"]
        assert np.abs(np.subtract(g["box"], w["box"])).max() <= 1, name
        assert g["label"] == w["label"], name
        # GPU arithmetic rounds differently from the CPU's: a looser bound than the WASM path's
        assert max(abs(g["probabilities"][e] - w["probabilities"][e]) for e in w["probabilities"]) < 0.01, (
            name
        )


@in_browser
def test_the_photo_chart_says_which_of_several_faces_it_shows(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = _launch(p, "--headless=new")
        try:
            page = _open(b, site, [])
            page.set_input_files("#photo-input", str(ROOT / "space" / "examples" / "two_faces.jpg"))
            page.wait_for_selector("#photo-chart .headline", timeout=30_000)
            headline = page.locator("#photo-chart .headline").inner_text()
            bars = page.locator("#photo-chart .bar .name").all_inner_texts()
            shown = json.loads(page.locator("#photo-json").text_content())  # inside a closed <details>
        finally:
            b.close()
    assert "the largest of 2 faces" in headline and headline.startswith(shown["faces"][0]["label"])
    assert bars == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # fixed order
