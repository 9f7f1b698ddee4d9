"""The Space: the app served in-process and driven through gradio_client, and the deploy bundle."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHIPPED, free_port, load_app, write_clip
from PIL import Image

from fer_hub import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "space" / "examples" / "astronaut.jpg"


def test_predict_endpoint_returns_all_seven_probabilities(served):
    from gradio_client import Client, handle_file

    _, url = served
    client = Client(url, verbose=False)
    result = client.predict(handle_file(str(EXAMPLE)), "cnn-model2", api_name="/predict")
    assert result["model"] == "cnn-model2" and result["face_found"] is True
    assert len(result["faces"]) == 1 and len(result["faces"][0]["probabilities"]) == 7


def test_the_api_lists_only_predict_with_named_and_described_parameters(served):
    from gradio_client import Client

    _, url = served
    api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
    assert sorted(api["named_endpoints"]) == ["/predict", "/video"] and not api["unnamed_endpoints"]
    ep = api["named_endpoints"]["/predict"]
    assert [p["parameter_name"] for p in ep["parameters"]] == ["image_file", "model", "detect"]
    assert [p["parameter_has_default"] for p in ep["parameters"]] == [False, True, True]
    assert "image file" in ep["parameters"][0]["python_type"]["description"]
    assert "The FileData class" not in json.dumps(api)  # no pasted library docstring, on any endpoint
    assert [r["label"] for r in ep["returns"]] == ["result"]
    assert "uncertain" in ep["returns"][0]["python_type"]["description"]
    assert ep["returns"][0]["python_type"]["type"] == (  # typed, not "Any"
        "dict(model: str, face_found: bool, faces: list[dict(box: list[int], label: str, "
        "probabilities: dict(str, float), uncertain: bool, unfamiliar: bool)])"
    )
    example = ep["parameters"][0]["example_input"]["path"]  # "Use via API" sends a photo, not a PDF
    assert example.endswith("/skimage/data/astronaut.png")
    video = api["named_endpoints"]["/video"]
    assert [p["parameter_name"] for p in video["parameters"]] == ["video_file", "model"]
    assert [r["label"] for r in video["returns"]] == ["timeline", "summary", "faces_csv"]
    assert "raw_angry" in video["returns"][2]["python_type"]["description"]  # the CSV's columns, said


def test_bad_file_is_a_clear_error_and_the_server_keeps_serving(served, tmp_path):
    from gradio_client import Client, handle_file

    _, url = served
    client = Client(url, verbose=False)
    bad = tmp_path / "notes.txt"
    bad.write_text("definitely not an image")
    with pytest.raises(Exception, match="Could not read notes.txt: not an image") as err:
        client.predict(handle_file(str(bad)), "custom-cnn", api_name="/predict")
    assert "/tmp" not in str(err.value) and "gradio" not in str(err.value)  # no server paths
    with pytest.raises(Exception, match="resnet is not in the list of choices"):
        client.predict(handle_file(str(EXAMPLE)), "resnet", api_name="/predict")
    ok = client.predict(handle_file(str(EXAMPLE)), "custom-cnn", api_name="/predict")
    assert ok["face_found"] is True


def test_an_unreadable_upload_in_the_photo_tab_says_which_file_and_why_once_and_clears_the_rest(
    served, tmp_path
):
    from gradio.data_classes import FileData

    app, _ = served
    bad = tmp_path / "holiday.jpg"
    bad.write_text("not really a jpeg")
    bomb = tmp_path / "bomb.png"  # a few kilobytes that claim 400 megapixels
    Image.new("1", (20_000, 20_000)).save(bomb)
    photo = app.PhotoInput(type="filepath")
    nan = tmp_path / "scan.tif"  # float pixels with NaN: refused, not converted and analysed
    Image.fromarray(np.where(np.eye(64) > 0, np.nan, 0.5).astype(np.float32), mode="F").save(nan)
    for path, reason in (
        (bad, "not an image"),
        (bomb, "over the limit of 50 megapixels"),
        (nan, "pixel values include NaN or infinity"),
    ):
        refused = photo.preprocess(FileData(path=str(path), orig_name=path.name))
        shown_photo, boxed, chart, rows, note, as_json = app.analyze(refused, "custom-cnn")
        # the words where the result would be; the photo, the picture, chart, table and JSON
        # emptied, so nothing of the previous photo stays on screen under the message
        assert note.startswith(f"**Could not read {path.name}: ") and reason in note
        assert str(tmp_path) not in note
        assert (shown_photo, boxed, chart, rows, as_json) == (None, None, {}, [], None)


def test_ui_functions_return_boxes_chart_table_and_summary(served):
    app, _ = served
    _, boxed, chart, rows, note, result = app.analyze(str(EXAMPLE), "custom-cnn")
    assert isinstance(boxed, Image.Image) and boxed.size == Image.open(EXAMPLE).size
    assert len(chart["confidences"]) == 7 and len(rows) == 1 and "1 face found" in note
    top = result["faces"][0]
    assert chart["headline"] == top["label"] + (" (uncertain)" if top["uncertain"] else "")
    shown = app.ExpressionChart(num_top_classes=7).postprocess(
        {"headline": "happy (uncertain)", "confidences": chart["confidences"]}
    )
    assert shown.label == "happy (uncertain)" and len(shown.confidences) == 7
    face = result["faces"][0]
    assert "Box colour = predicted expression" in note
    assert face["uncertain"] == (
        max(face["probabilities"].values()) < app.PREDICTORS["custom-cnn"].uncertain_below
        or face["unfamiliar"]
    )
    _, explained, *_ = app.analyze(str(EXAMPLE), "custom-cnn", True)  # the heat map changes the picture
    assert explained.size == boxed.size and explained.tobytes() != boxed.tobytes()
    assert app.analyze(None, "custom-cnn")[4].startswith("Upload a photo")
    still = __import__("numpy").asarray(Image.open(EXAMPLE).resize((640, 480)))
    frame, chart, status, session = app.live(still, "custom-cnn", None)
    bars = chart_bars(chart)
    assert frame.size == (480, 360) and list(bars) == list(EMOTIONS)  # LIVE_MAX_SIDE; fixed order
    assert sum(bars.values()) == pytest.approx(100, abs=4) and "smoothed" in status  # whole percents
    none, *_, same = app.live(None, "custom-cnn", session)
    assert none is None and same is session
    _, chart, status, _ = app.live(np.full((480, 640, 3), 128, np.uint8), "custom-cnn", session)
    assert status.startswith("No face in view") and sum(chart_bars(chart).values()) == 0


def chart_bars(chart: str) -> dict[str, int]:
    """The live chart's bars, in the order the page shows them: {expression: percent}."""
    import re

    return {e: int(p) for e, p in re.findall(r'data-expression="(\w+)" data-percent="(\d+)"', chart)}


def test_the_live_view_sends_its_picture_chart_and_status_only_when_they_change(served):
    import gradio as gr
    import numpy as np

    app, _ = served
    still = np.asarray(Image.open(EXAMPLE).resize((640, 480)))
    frame, chart, status, session = app.live(still, "custom-cnn", None)
    assert isinstance(chart, str) and isinstance(status, str)
    # the same frame again (a still camera): the smoothed average stays put, so the page keeps
    # what it shows, the picture included
    frame, chart, status, session = app.live(still, "custom-cnn", session)
    assert all(isinstance(out, type(gr.skip())) for out in (frame, chart, status))
    # the face moves: a new picture, the same chart
    moved = np.roll(still, 8, axis=1)
    frame, chart, _, session = app.live(moved, "custom-cnn", session)
    assert isinstance(frame, Image.Image)
    # the face leaves: both change, and are sent
    _, chart, status, _ = app.live(np.full((480, 640, 3), 128, np.uint8), "custom-cnn", session)
    assert isinstance(chart, str) and status.startswith("No face in view")


def test_live_view_keeps_one_track_per_face(served):
    import numpy as np

    app, _ = served
    still = np.asarray(Image.open(EXAMPLE))
    session = None
    for _ in range(3):
        _, _, _, session = app.live(still, "custom-cnn", session)
    tracker = session.tracker
    assert [t.id for t in tracker.tracks] == [1] and tracker.tracks[0].hits == 3


def test_video_endpoint_returns_a_timeline_summary_and_csv(served, tmp_path):
    import csv

    from gradio_client import Client, handle_file

    _, url = served
    clip = write_clip(tmp_path / "clip.mp4", frames=20)
    plot, note, csv_file = Client(url, verbose=False).predict(
        handle_file(str(clip)), "custom-cnn", api_name="/video"
    )
    assert Path(plot).stat().st_size > 10_000
    assert "Analysed every frame (" in note and "| 1 |" in note  # one face, its share of time per expression
    with open(csv_file, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and {r["track"] for r in rows} == {"1"}


def test_the_video_tab_explains_a_clip_it_cannot_use_once_and_clears_the_last_result(served, tmp_path):
    """The page's button gets the words in the summary's place and empty outputs (no red badge
    over the previous clip's plot); a program calling /video gets the error."""
    import gradio as gr

    app, _ = served
    bad = tmp_path / "holiday.mp4"
    bad.write_text("not a video")
    plot, note, csv_file = app.video_tab(str(bad), "custom-cnn", progress=lambda *a, **k: None)
    assert plot is None and csv_file is None
    assert note.startswith("**Could not read holiday.mp4: ") and str(tmp_path) not in note
    assert app.video_tab(None, "custom-cnn")[1].startswith("Upload a clip first")
    with pytest.raises(gr.Error, match="Could not read holiday.mp4"):
        app.video(str(bad), "custom-cnn", progress=lambda *a, **k: None)


@pytest.mark.slow
def test_app_without_checkpoints_fails_at_startup_naming_the_fix(tmp_path):
    env = {**os.environ, "FER_MODEL_REPO": "", "HF_HUB_OFFLINE": "1"}
    app_copy = tmp_path / "app.py"
    for name in ("app.py", "components.py", "views.py"):
        (tmp_path / name).write_text((ROOT / "space" / name).read_text())
    proc = subprocess.run(
        [sys.executable, str(app_copy)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "fer_hub Space cannot start: no model checkpoint in" in proc.stderr
    assert "python train_hub.py --model custom-cnn --recipe strong" in proc.stderr


@pytest.mark.slow
def test_app_with_an_unreachable_model_repo_fails_at_startup_in_one_message(tmp_path):
    env = {**os.environ, "FER_MODEL_REPO": "no-such-org/fer-cnn", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "space" / "app.py")], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "fer_hub Space cannot start:" in proc.stderr and "no-such-org/fer-cnn" in proc.stderr


@pytest.mark.slow
def test_app_with_a_nan_checkpoint_fails_at_startup_naming_the_folder(nan_checkpoint):
    env = {**os.environ, "FER_MODEL_REPO": str(nan_checkpoint), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "space" / "app.py")], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"fer_hub Space cannot start: {nan_checkpoint}: the weights hold NaN" in proc.stderr


@pytest.mark.slow
def test_deploy_bundle_runs_on_its_own(tiny_checkpoints, tmp_path):
    from gradio_client import Client, handle_file

    bundle = tmp_path / "bundle"
    build = subprocess.run(
        [
            sys.executable,
            str(ROOT / "space" / "deploy.py"),
            "--build-only",
            str(bundle),
            "--checkpoints",
            str(tiny_checkpoints),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    assert {p.name for p in bundle.iterdir()} == {
        "app.py",
        "components.py",
        "README.md",
        "requirements.txt",
        "views.py",
        "examples",
        "checkpoints",
        "fer_hub",
    }
    assert "sdk: gradio" in (bundle / "README.md").read_text()
    # The bundle's own fer_hub copy is the one its app imports.
    origin = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, '.'); import fer_hub; print(fer_hub.__file__)",
        ],
        cwd=bundle,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(origin.stdout.strip()).resolve().is_relative_to(bundle.resolve())

    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "FER_MODEL_REPO": "",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    server = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=bundle,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while time.time() < deadline:
            assert server.poll() is None, server.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        result = Client(url, verbose=False).predict(
            handle_file(str(bundle / "examples" / "astronaut.jpg")), "custom-cnn", api_name="/predict"
        )
        assert result["face_found"] is True
        json.dumps(result)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_deploy_refuses_without_checkpoints_and_names_the_command(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "space" / "deploy.py"),
            "--build-only",
            str(tmp_path / "b"),
            "--checkpoints",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "python train_hub.py --model custom-cnn" in proc.stderr


def test_deploy_uploads_the_bundle_to_a_gradio_space(tiny_checkpoints, monkeypatch, hub_online):
    import huggingface_hub

    sys.path.insert(0, str(ROOT / "space"))
    import deploy

    calls = []
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "create_repo",
        lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)),
    )

    def upload_folder(self, *, repo_id, folder_path, **kw):
        calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), kw))
        return "https://huggingface.co/spaces/my-org/fer/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert deploy.main(["--repo-id", "my-org/fer", "--checkpoints", str(tiny_checkpoints)]) == 0
    (_, rid, create_kw), (_, uid, files, upload_kw) = calls
    assert rid == uid == "my-org/fer"
    assert create_kw["repo_type"] == "space" and create_kw["space_sdk"] == "gradio"
    assert upload_kw["repo_type"] == "space"
    assert files == [
        "README.md",
        "app.py",
        "checkpoints",
        "components.py",
        "examples",
        "fer_hub",
        "requirements.txt",
        "views.py",
    ]


# -- what one visitor may cost, and what one visitor may see --------------------------------------


def _peak_rss_since_reset() -> tuple[int, callable]:
    """(resident bytes now, a function giving the peak since now): Linux's high-water mark,
    reset through /proc/self/clear_refs."""

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    return status("VmRSS:"), lambda: status("VmHWM:")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
def test_four_concurrent_8k_videos_are_refused_before_they_cost_memory(served, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    _, url = served
    clip = write_clip(tmp_path / "huge.mp4", frames=16, size=(8192, 8192), face=False)
    clients = [Client(url, verbose=False) for _ in range(4)]
    before, peak = _peak_rss_since_reset()

    def send(client):
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(clip)), "cnn-model2", api_name="/video")
        return str(err.value)

    with ThreadPoolExecutor(4) as pool:
        messages = list(pool.map(send, clients))
    assert peak() - before < 1_000_000_000  # a decoder holding one such frame takes ~900 MB
    assert all(
        m == "Could not read huge.mp4: frames of 8192 x 8192 pixels, over the limit of 8.3 megapixels."
        for m in messages
    ), messages


@pytest.mark.slow
def test_a_raw_stream_without_a_frame_count_stops_at_the_frame_cap(served, tmp_path):
    import csv

    from gradio_client import Client, handle_file
    from views import MAX_ANALYSED_FRAMES

    from fer_hub.video import probe

    app, url = served
    clip = write_clip(
        tmp_path / "stream.mp4", frames=MAX_ANALYSED_FRAMES + 150, size=(192, 144), container="h264"
    )
    assert probe(clip).frames == 0  # the container says nothing: the cap must count as it decodes
    _, note, csv_file = Client(url, verbose=False).predict(
        handle_file(str(clip)), "custom-cnn", api_name="/video"
    )
    with open(csv_file, newline="") as f:
        frames = {int(r["frame"]) for r in csv.DictReader(f)}
    assert frames and max(frames) < MAX_ANALYSED_FRAMES
    assert f"Stopped early** after {MAX_ANALYSED_FRAMES} frames" in note


@pytest.mark.slow
def test_identical_uploads_analysed_at_once_with_different_models_get_their_own_csv(served, tmp_path):
    import csv
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    _, url = served
    clip = write_clip(tmp_path / "clip.mp4", frames=40)
    models = ["cnn-model2", "custom-cnn"] * 2

    def run(model):
        _, _, csv_file = Client(url, verbose=False).predict(handle_file(str(clip)), model, api_name="/video")
        with open(csv_file, newline="") as f:
            return [(int(r["frame"]), round(float(r["happy"]), 6)) for r in csv.DictReader(f)]

    alone = {m: run(m) for m in models[:2]}  # one request at a time: the reference
    assert alone["cnn-model2"] != alone["custom-cnn"]  # two models: two different answers
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, models))
    for model, rows in zip(models, together):
        assert rows == alone[model] and len(rows) == 40


def test_video_results_live_in_a_private_folder_per_request_and_are_deleted_later(served, tmp_path):
    from gradio.route_utils import delete_files_created_by_app
    from gradio.utils import get_upload_folder
    from gradio_client import Client, handle_file

    app, url = served
    clip = write_clip(tmp_path / "clip.mp4", frames=10)
    client = Client(url, verbose=False)
    folders = set(Path(get_upload_folder()).glob("fer_hub-video-*"))
    client.predict(handle_file(str(clip)), "custom-cnn", api_name="/video")
    client.predict(handle_file(str(clip)), "custom-cnn", api_name="/video")
    new = set(Path(get_upload_folder()).glob("fer_hub-video-*")) - folders
    assert len(new) == 2  # the same upload twice: two folders, nothing shared
    files = [f for d in new for f in d.iterdir()]
    assert sorted(f.name for f in files) == ["clip_faces.csv"] * 2 + ["clip_timeline.png"] * 2
    assert app.demo.delete_cache == (app.KEEP_FILES_S // 6, app.KEEP_FILES_S)
    delete_files_created_by_app(app.demo, age=0)  # what the schedule does once they are old
    assert not any(f.exists() for f in files)


@pytest.mark.slow
def test_the_video_progress_bar_counts_decoded_frames(served, tmp_path):
    from gradio_client import Client, handle_file

    _, url = served
    clip = write_clip(tmp_path / "clip.mp4", frames=120)
    job = Client(url, verbose=False).submit(handle_file(str(clip)), "custom-cnn", api_name="/video")
    seen = []
    while not job.done():
        status = job.status()
        if status.progress_data:
            seen.append((status.progress_data[0].progress, status.progress_data[0].desc))
        time.sleep(0.05)
    job.result()
    fractions = sorted({p for p, _ in seen if p is not None})
    assert len(fractions) >= 3 and 0 < fractions[0] < 1, seen  # it moved, in steps, before the end
    assert any(desc.startswith("frame ") and desc.endswith(" of 120") for _, desc in seen)


def _bad_videos(tmp_path: Path) -> dict[str, Path]:
    import av

    kinds = {
        "empty.mp4": b"",
        "text.mp4": b"not a video at all\n" * 50,
        "corrupt.mp4": bytes(range(256)) * 64,
    }
    out = {}
    for name, data in kinds.items():
        out[name] = tmp_path / name
        out[name].write_bytes(data)
    good = write_clip(tmp_path / "good.mp4", frames=20)
    out["truncated.mp4"] = tmp_path / "truncated.mp4"
    out["truncated.mp4"].write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    out["photo.mp4"] = tmp_path / "photo.mp4"  # a JPEG with a video's name
    Image.open(EXAMPLE).save(out["photo.mp4"], format="JPEG")
    out["photo.jpg"] = tmp_path / "photo.jpg"
    out["photo.jpg"].write_bytes(EXAMPLE.read_bytes())
    out["sound.m4a"] = tmp_path / "sound.m4a"  # audio only
    with av.open(str(out["sound.m4a"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    out["huge.mp4"] = write_clip(tmp_path / "huge.mp4", frames=2, size=(4096, 4096), face=False)
    return out


@pytest.mark.slow
def test_no_video_or_photo_error_holds_a_server_path(served, tmp_path):
    from gradio_client import Client, handle_file

    _, url = served
    client = Client(url, verbose=False)
    messages = {}
    for name, path in _bad_videos(tmp_path).items():
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(path)), "custom-cnn", api_name="/video")
        messages[name] = str(err.value)
    bomb = tmp_path / "bomb.png"  # a few kilobytes that claim 400 megapixels
    Image.new("1", (20_000, 20_000)).save(bomb)
    for path in (bomb, tmp_path / "text.mp4", tmp_path / "empty.mp4"):
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(path)), "custom-cnn", api_name="/predict")
        messages[f"/predict {path.name}"] = str(err.value)
    for name, message in messages.items():
        assert message.startswith(f"Could not read {name.split()[-1]}: "), (name, message)
        assert "/" not in message and "\\" not in message and "Errno" not in message, (name, message)
    assert "a still image, not a video" in messages["photo.mp4"] and "still image" in messages["photo.jpg"]
    assert "has no video stream" in messages["sound.m4a"]
    assert "over the limit of 50 megapixels" in messages["/predict bomb.png"]


def test_an_upload_over_the_size_limit_is_refused_saying_the_limit(served, tmp_path):
    import httpx
    from gradio_client import Client, handle_file
    from views import MAX_UPLOAD_BYTES

    _, url = served
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {MAX_UPLOAD_BYTES} bytes"):
        Client(url, verbose=False).predict(handle_file(str(big)), "cnn-model2", api_name="/predict")
    with open(big, "rb") as f:  # a program that skips the client's own check meets the server's
        response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files={"files": f}, timeout=60)
    assert (
        response.status_code == 413 and f"maximum allowed size of {MAX_UPLOAD_BYTES} bytes" in response.text
    )


def test_a_user_error_is_one_log_line_not_a_traceback(served, tmp_path, capfd, caplog):
    from gradio_client import Client, handle_file

    _, url = served
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    capfd.readouterr()
    with caplog.at_level("INFO", logger="fer_hub.space"):
        with pytest.raises(Exception, match="Could not read notes.txt"):
            Client(url, verbose=False).predict(handle_file(str(bad)), "custom-cnn", api_name="/predict")
    assert [r.getMessage() for r in caplog.records if r.name == "fer_hub.space"] == [
        "refused: Could not read notes.txt: not an image, or a format this app cannot read "
        "(JPEG, PNG, WebP, GIF, BMP or TIFF)."
    ]
    assert "Traceback" not in capfd.readouterr().err  # gradio prints one for errors it did not expect


def test_deploy_bundles_only_its_allow_list_and_refuses_unfinished_models(tiny_checkpoints, tmp_path):
    import shutil

    sys.path.insert(0, str(ROOT / "space"))
    import deploy

    ckpts = tmp_path / "ckpts"
    shutil.copytree(tiny_checkpoints, ckpts)
    (ckpts / "custom-cnn" / ".env").write_text("HF_TOKEN=hf_secret")
    (ckpts / "smoke-run").mkdir()  # a folder of another name: never bundled
    (ckpts / "smoke-run" / "model.safetensors").write_bytes(b"x")
    bundle = deploy.build_bundle(tmp_path / "bundle", ckpts)
    names = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    assert not [n for n in names if any(part.startswith(".") for part in Path(n).parts)]
    assert {n.split("/")[1] for n in names if n.startswith("checkpoints/")} == {"custom-cnn", "cnn-model2"}
    assert "fer_hub/weights/retinaface_mobilenet0.25.onnx" in names and "fer_hub/predict.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    (ckpts / "custom-cnn" / "training_state.pt").write_bytes(b"a run in progress")
    with pytest.raises(ValueError, match="custom-cnn holds a training state"):
        deploy.build_bundle(tmp_path / "bundle2", ckpts)
    (ckpts / "custom-cnn" / "training_state.pt").unlink()
    (ckpts / "custom-cnn" / "training_args.json").write_text(json.dumps({"limit": 64}))
    with pytest.raises(ValueError, match=r"custom-cnn is a smoke run \(trained on --limit 64 images\)"):
        deploy.build_bundle(tmp_path / "bundle3", ckpts)


def test_a_photo_without_a_face_gets_no_faces_and_a_crop_can_be_classified_whole(served, tmp_path):
    from gradio_client import Client, handle_file

    app, url = served
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(wall)
    result = Client(url, verbose=False).predict(handle_file(str(wall)), "cnn-model2", api_name="/predict")
    assert result == {"model": "cnn-model2", "face_found": False, "faces": []}
    _, _, chart, rows, note, _ = app.analyze(str(wall), "cnn-model2")
    assert chart == {} and rows == [] and note.startswith("No face found")
    crop = tmp_path / "crop.png"
    Image.open(EXAMPLE).crop((150, 40, 330, 220)).save(crop)  # the astronaut's face, cropped
    _, _, chart, rows, note, shown = app.analyze(str(crop), "cnn-model2", False, True)
    assert len(rows) == 1 and shown["faces"][0]["box"] == [0, 0, 180, 180] and len(chart["confidences"]) == 7


FER_CROPS = sorted((Path(__file__).parent / "data" / "fer2013").glob("*.png"))


def test_fer2013_crops_are_classified_whole_through_the_api_when_detect_is_off(served):
    """The example crops shipped with the tests (48x48 FER-2013 faces): /predict with
    detect=false scores each as one face filling the image, exactly as the Predictor does."""
    from gradio_client import Client, handle_file

    app, url = served
    client = Client(url, verbose=False)
    assert len(FER_CROPS) == 7
    for crop in FER_CROPS:
        result = client.predict(handle_file(str(crop)), "cnn-model2", False, api_name="/predict")
        (face,) = result["faces"]
        assert result["face_found"] is True and face["box"] == [0, 0, 48, 48]
        direct = app.PREDICTORS["cnn-model2"](str(crop), detect=False)["faces"][0]
        assert face["label"] == direct["label"]
        assert face["probabilities"] == pytest.approx(direct["probabilities"], abs=1e-6)
    # detect left on (the default, as a 2-argument call gets it): a 48x48 crop is too small to
    # hold a face the detector can find, and the answer says so rather than inventing one
    assert client.predict(handle_file(str(FER_CROPS[0])), "cnn-model2", api_name="/predict")["faces"] == []


def test_the_space_serves_predict_as_an_mcp_tool_with_a_described_image(served):
    import asyncio

    pytest.importorskip("mcp")
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    _, url = served

    async def list_tools():
        async with sse_client(url.rstrip("/") + "/gradio_api/mcp/sse") as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return {t.name: t for t in (await session.list_tools()).tools}

    tools = asyncio.run(list_tools())
    assert set(tools) >= {"predict", "video"}
    predict = tools["predict"]
    assert predict.description.startswith("Find the faces in an image and score each on seven expressions")
    image = predict.inputSchema["properties"]["image_file"]
    assert image["description"] == "the image to analyse" and predict.inputSchema["required"] == [
        "image_file"
    ]
    assert predict.inputSchema["properties"]["model"]["enum"] == ["cnn-model2", "custom-cnn"]
    assert "already a face crop" in predict.inputSchema["properties"]["detect"]["description"]


def test_the_space_serves_with_sleeping_onnxruntime_threads_unless_its_deployer_says_otherwise(monkeypatch):
    from fer_hub.onnx_session import WAIT_POLICY_ENV

    monkeypatch.setenv(WAIT_POLICY_ENV, "recorded")  # so the app's default is undone after the test
    monkeypatch.delenv(WAIT_POLICY_ENV)
    app = load_app(monkeypatch, SHIPPED)
    predictor = app.PREDICTORS["cnn-model2"]
    for session in (predictor.detector.net.session, predictor.model.session):
        assert (
            session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
        )
