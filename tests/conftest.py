"""Shared fixtures. Every test runs offline: nothing here may reach the network."""

from __future__ import annotations

import importlib.util
import io
import os
import socket
import sys
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub or datasets: they read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="fer_hub_test_datasets_")  # not the user's
os.environ.setdefault("MPLBACKEND", "Agg")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

SHARED_FER = Path(__file__).resolve().parents[2] / "shared" / "fer2013"
# The Space's own modules (views.py, components.py) import as the Space imports them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "space"))
EXAMPLES = Path(__file__).resolve().parents[1] / "space" / "examples"


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """The decoded-data cache in a per-session temp dir, never the user's."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("FER_HUB_CACHE", str(root / "fer_hub_cache"))
    monkeypatch.delenv("FER_MODEL_REPO", raising=False)


@pytest.fixture
def shared_fer() -> Path:
    if not (SHARED_FER / "data").is_dir():
        pytest.skip(f"full FER-2013 not found at {SHARED_FER}")
    return SHARED_FER


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def face_like(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A synthetic 'face' whose brightness pattern depends on the label, so a CNN can learn it."""
    img = rng.integers(0, 60, (size, size)).astype(np.uint8)
    band = size // 7
    img[label * band : (label + 1) * band, :] += 180  # horizontal band: survives a mirror flip
    return img


def write_hub_dataset(tmp_path: Path, splits: dict[str, datasets.Dataset]) -> Path:
    """Lay `splits` out exactly like a Hub dataset repo: data/<split>-*.parquet + README configs.

    The folder is named after the test: datasets keys its own cache by folder name and file
    mtimes, so same-named folders written within one second would share a cache entry."""
    root = tmp_path / tmp_path.name
    (root / "data").mkdir(parents=True)
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for name, ds in splits.items():
        ds.to_parquet(str(root / "data" / f"{name}-00000-of-00001.parquet"))
        lines += [f"  - split: {name}", f"    path: data/{name}-*"]
    (root / "README.md").write_text("\n".join(lines + ["---", "", "test fixture"]) + "\n")
    return root


@pytest.fixture
def tiny_fer(tmp_path) -> Path:
    """A small learnable FER-style dataset (train 140 / validation 35 / test 35) in Hub layout."""
    from fer_hub import EMOTIONS

    def split(n, seed):
        rng = np.random.default_rng(seed)
        labels = [i % 7 for i in range(n)]
        return datasets.Dataset.from_dict(
            {
                "image": [{"bytes": png_bytes(face_like(y, rng)), "path": None} for y in labels],
                "label": labels,
            },
            features=datasets.Features(
                {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(EMOTIONS))}
            ),
        )

    return write_hub_dataset(
        tmp_path, {"train": split(140, 0), "validation": split(35, 1), "test": split(35, 2)}
    )


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """space/checkpoints-style folder with both (untrained, seeded) models."""
    from fer_hub import CnnModel2, CustomCNN

    root = tmp_path_factory.mktemp("checkpoints")
    for seed, (name, cls) in enumerate([("custom-cnn", CustomCNN), ("cnn-model2", CnnModel2)]):
        torch.manual_seed(seed)
        cls().save_pretrained(root / name)
    return root


@pytest.fixture
def hub_online(monkeypatch):
    """The Hub as `--push` sees it online, with a valid write token; nothing leaves the machine
    (tests stub the upload calls themselves)."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "whoami",
        lambda self, token=None, **kw: {"name": "me", "auth": {"accessToken": {"role": "write"}}},
    )


@pytest.fixture
def nan_checkpoint(tmp_path) -> Path:
    """A CustomCNN folder, named "broken", whose fc1 weights are all NaN: it saves fine."""
    from fer_hub import CustomCNN

    torch.manual_seed(0)
    model = CustomCNN()
    with torch.no_grad():
        model.fc1.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "broken")
    return tmp_path / "broken"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photograph of one face (NASA, public domain), shipped with scikit-image."""
    from skimage import data

    return data.astronaut()


def write_clip(
    path: Path,
    frames: int = 30,
    fps: int = 25,
    size: tuple[int, int] = (640, 480),
    face: bool = True,
    container: str | None = None,
    keyframe_every: int | None = None,
) -> Path:
    """An H.264 clip of the astronaut sliding right across a gray frame (`face=False`: gray
    only, which encodes fast at any size). `container="h264"` writes a raw stream, which states
    neither its frame count nor its duration. `keyframe_every` N frames (default: x264's 250),
    with B-frames, so frames are stored out of presentation order."""
    import av

    w, h = size
    side = h * 5 // 6
    face_px = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((side, side)))
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if keyframe_every:
            stream.codec_context.gop_size = keyframe_every
            stream.options = {"bf": "2"}
        for i in range(frames):
            frame = np.full((h, w, 3), 90, np.uint8)
            if face:
                x = min(i * w // 128, w - side)
                frame[h // 12 : h // 12 + side, x : x + side] = face_px
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_app(monkeypatch, checkpoints: Path):
    """Import space/app.py as a module, its models taken from `checkpoints` via FER_MODEL_REPO in
    the Space's own order (the default first)."""
    from fer_hub.models import SHIPPED_MODELS

    monkeypatch.setenv("FER_MODEL_REPO", ",".join(str(checkpoints / name) for name in SHIPPED_MODELS))
    spec = importlib.util.spec_from_file_location(
        "fer_space_app", Path(__file__).resolve().parents[1] / "space" / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHIPPED = Path(__file__).resolve().parents[1] / "space" / "checkpoints"


@pytest.fixture(scope="module")
def served():
    """(app module, url): the demo, on the shipped checkpoints as a user gets it, launched on a
    free port for this module's tests."""
    mp = pytest.MonkeyPatch()
    app = load_app(mp, SHIPPED)
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **app.LAUNCH)
    yield app, url
    app.demo.close()
    mp.undo()


# Figures a test measured (the live tab's updates per second): printed at the end of the run,
# whatever pytest's capture, so the run's log carries them.
_REPORTS: list[str] = []


@pytest.fixture
def report():
    """report(line): add a line to the figures printed in the run's summary."""
    return _REPORTS.append


def pytest_terminal_summary(terminalreporter):
    if _REPORTS:
        terminalreporter.section("measured")
        for line in _REPORTS:
            terminalreporter.write_line(line)


def largest_int8_weight(path: Path) -> int:
    """The largest magnitude among an ONNX file's int8 weight tensors (zero points left out)."""
    import onnx
    from onnx import numpy_helper

    tensors = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    return max(int(abs(t.astype(int)).max()) for t in tensors if t.dtype == "int8" and t.ndim >= 2)
