"""`fer-hub` on the command line: folders of photos, videos with tracked faces, ONNX export."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_clip
from PIL import Image

from fer_hub import EMOTIONS, load_model
from fer_hub.cli import PREDICT_COLUMNS, main
from fer_hub.predict import Predictor
from fer_hub.video import VIDEO_COLUMNS, VideoError, analyze_video, probe

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "space" / "examples" / "astronaut.jpg"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_a_folder_writes_one_row_per_face_and_skips_unreadable_files(
    tiny_checkpoints, tmp_path, capsys
):
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    shutil.copy(ASTRONAUT, photos / "nested" / "astronaut.jpg")
    shutil.copy(ROOT / "space" / "examples" / "two_faces.jpg", photos / "two.jpg")
    Image.fromarray(np.full((64, 64), 200, np.uint8)).save(photos / "blank.png")  # no face in it
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (photos / "notes.txt").write_text("not an image, and not picked up from a folder")
    out = tmp_path / "faces.csv"
    code = main(["predict", str(photos), "--csv", str(out), "--model", str(tiny_checkpoints / "custom-cnn")])
    assert code == 0
    rows = read_csv(out)
    assert list(rows[0]) == PREDICT_COLUMNS
    by_file = {}
    for r in rows:
        by_file.setdefault(Path(r["file"]).name, []).append(r)
    assert set(by_file) == {"astronaut.jpg", "two.jpg", "blank.png"}
    assert len(by_file["two.jpg"]) == 2 and [r["face"] for r in by_file["two.jpg"]] == ["0", "1"]
    (blank,) = by_file["blank.png"]  # no face: one row that says so, with nothing invented
    assert blank["face_found"] == "False" and blank["label"] == "" and blank["happy"] == ""
    for r in rows:
        if r["face_found"] == "False":
            continue
        assert sum(float(r[e]) for e in EMOTIONS) == pytest.approx(1, abs=1e-4)
        assert r["label"] == max(EMOTIONS, key=lambda e: float(r[e]))
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.jpg" in err and "3 image(s), 3 face(s) found, 1 unreadable" in err


@pytest.mark.slow
def test_predict_without_csv_writes_a_clean_csv_on_stdout(tiny_checkpoints, capsys):
    assert main(["predict", str(ASTRONAUT), "--model", str(tiny_checkpoints / "cnn-model2")]) == 0
    header, row = capsys.readouterr().out.splitlines()  # nothing else: `> faces.csv` must parse
    assert header == ",".join(PREDICT_COLUMNS) and row.startswith(str(ASTRONAUT))


def test_predict_without_model_uses_the_spaces_default_shipped_model(tmp_path):
    from fer_hub.models import SHIPPED_MODELS

    out = tmp_path / "faces.csv"
    assert main(["predict", str(ASTRONAUT), "--csv", str(out)]) == 0
    [row] = read_csv(out)
    expected = Predictor.from_pretrained(ROOT / "space" / "checkpoints" / SHIPPED_MODELS[0])(ASTRONAUT)
    [face] = expected["faces"]
    assert [float(row[e]) for e in EMOTIONS] == pytest.approx(
        [face["probabilities"][e] for e in EMOTIONS], abs=1e-5
    )


@pytest.mark.parametrize("flag, tta", [([], None), (["--tta"], True), (["--no-tta"], False)])
def test_predict_scores_as_the_model_says_unless_told_otherwise(flag, tta, tmp_path):
    """No flag: the model's own scoring (its config's tta), as the Space and Predictor use it;
    --tta / --no-tta override it."""
    folder = ROOT / "space" / "checkpoints" / "cnn-model2"
    out = tmp_path / "faces.csv"
    assert main(["predict", str(ASTRONAUT), "--model", str(folder), "--csv", str(out), *flag]) == 0
    [row] = read_csv(out)
    predictor = Predictor.from_pretrained(folder, tta=tta)
    [face] = predictor(ASTRONAUT)["faces"]
    assert [float(row[e]) for e in EMOTIONS] == pytest.approx(
        [face["probabilities"][e] for e in EMOTIONS], abs=1e-5
    )
    other = Predictor.from_pretrained(folder, tta=not predictor.tta)(ASTRONAUT)["faces"][0]
    assert max(abs(float(row[e]) - other["probabilities"][e]) for e in EMOTIONS) > 1e-4


def test_predict_json_and_bad_input_exit_codes(tiny_checkpoints, tmp_path, capsys):
    model = str(tiny_checkpoints / "custom-cnn")
    out = tmp_path / "o.json"
    assert main(["predict", str(ASTRONAUT), "--json", str(out), "--model", model]) == 0
    (face,) = json.loads(out.read_text())
    assert face["face_found"] is True and set(PREDICT_COLUMNS) <= set(face)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--model", model]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["predict", str(ASTRONAUT), "--model", str(tmp_path / "missing")]) == 2
    assert "neither a model folder nor a Hub repo id" in capsys.readouterr().err
    gone = tmp_path / "gone.jpg"
    assert main(["predict", str(gone), "--model", model]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"error: {gone}: no such file or folder\n"
    assert main(["predict"]) == 2  # nothing to read
    assert "give image files, folders or Parquet files, or --dataset" in capsys.readouterr().err


def test_predict_with_only_unreadable_images_writes_nothing(tiny_checkpoints, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    out = tmp_path / "faces.csv"
    argv = ["predict", str(broken), "--model", str(tiny_checkpoints / "custom-cnn")]
    assert main(argv) == 2
    stdout, err = capsys.readouterr()
    assert stdout == "" and f"skipped {broken}" in err and "nothing written" in err
    assert main([*argv, "--csv", str(out)]) == 2
    assert not out.exists()


@pytest.mark.timeout(240)
def test_video_tracks_one_face_with_increasing_times_plot_and_annotated_copy(
    tiny_checkpoints, tmp_path, capsys
):
    clip = write_clip(tmp_path / "clip.mp4", frames=30)
    out, plot, boxed = tmp_path / "clip.csv", tmp_path / "clip.png", tmp_path / "boxed.mp4"
    code = main(
        ["video", str(clip), "--csv", str(out), "--every", "2", "--plot", str(plot), "--annotate", str(boxed),
         "--model", str(tiny_checkpoints / "custom-cnn")]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = read_csv(out)
    assert list(rows[0]) == VIDEO_COLUMNS
    assert [int(r["frame"]) for r in rows] == list(range(0, 30, 2))  # one face per analysed frame
    assert {r["track"] for r in rows} == {"1"}  # the face keeps its id while it moves
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(times) and times[1] == pytest.approx(2 / 25, abs=1e-3)
    xs = [int(r["x"]) for r in rows]
    assert xs[-1] > xs[0] + 100  # the box follows the face across the frame
    for r in rows:
        assert sum(float(r[e]) for e in EMOTIONS) == pytest.approx(1, abs=1e-4)
        assert sum(float(r[f"raw_{e}"]) for e in EMOTIONS) == pytest.approx(1, abs=1e-4)
    assert Image.open(plot).size[0] > 500
    info = probe(boxed)
    assert (info.frames, info.width, info.height) == (30, 640, 480)


@pytest.mark.parametrize(
    "name, why",
    [
        ("clip.mp4", "not a video"),  # FFmpeg refuses to open it
        ("folder", "a folder, not a video file"),
    ],
)
def test_video_that_is_not_a_video_is_a_one_line_error(name, why, tiny_checkpoints, tmp_path, capsys):
    bad = tmp_path / name
    if name == "folder":
        bad.mkdir()
    else:
        bad.write_text("no frames here")
    args = [
        "video",
        str(bad),
        "--csv",
        str(tmp_path / "o.csv"),
        "--model",
        str(tiny_checkpoints / "custom-cnn"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and why in err and len(err.strip().splitlines()) == 1


def test_a_file_ffmpeg_opens_but_cannot_decode_is_a_video_error(tiny_checkpoints, tmp_path):
    bad = tmp_path / "photo.jpg"  # FFmpeg opens a .jpg as an image sequence, then fails on the bytes
    bad.write_text("no frames here")
    predictor = Predictor.from_pretrained(tiny_checkpoints / "custom-cnn")
    with pytest.raises(VideoError, match=r"photo\.jpg: not a video FFmpeg can read$") as err:
        analyze_video(bad, predictor)
    assert err.value.reason == "not a video FFmpeg can read"  # what a server may show: no path


def test_unwritable_outputs_are_refused_before_any_work(tiny_checkpoints, tmp_path, capsys):
    model = str(tiny_checkpoints / "custom-cnn")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    clip = tmp_path / "missing.mp4"  # never opened: the outputs are checked first
    cases = [
        (["predict", str(ASTRONAUT), "--csv", str(folder)], "--csv"),
        (["predict", str(ASTRONAUT), "--json", str(folder)], "--json"),
        (
            ["video", str(clip), "--csv", str(tmp_path / "o.csv"), "--plot", str(tmp_path / "t.jpgx")],
            "--plot",
        ),
        (
            ["video", str(clip), "--csv", str(tmp_path / "o.csv"), "--annotate", str(tmp_path / "b.gif")],
            "--annotate",
        ),
        (["export", model, "--onnx", str(folder)], "--onnx"),
    ]
    for argv, flag in cases:
        assert main(argv + ([] if argv[0] == "export" else ["--model", model])) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag} ") and len(err.strip().splitlines()) == 1, err


def test_export_with_a_dataset_that_is_not_one_is_a_one_line_error(tiny_checkpoints, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [
        "export",
        str(tiny_checkpoints / "custom-cnn"),
        "--onnx",
        str(tmp_path / "m.onnx"),
        "--dataset",
        str(empty),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --dataset {empty}: ") and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_a_model_file_that_is_not_onnx_is_a_one_line_error(tmp_path, capsys):
    fake = tmp_path / "model.onnx"
    fake.write_text("not a protobuf")
    assert main(["predict", str(ASTRONAUT), "--model", str(fake)]) == 2
    err = capsys.readouterr().err
    assert "not an ONNX model onnxruntime can load" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["custom-cnn", "cnn-model2"])
def test_export_writes_onnx_that_matches_torch(name, tiny_checkpoints, tmp_path, capsys):
    onnx_file = tmp_path / f"{name}.onnx"
    assert main(["export", str(tiny_checkpoints / name), "--onnx", str(onnx_file)]) == 0
    assert "onnxruntime matches torch" in capsys.readouterr().out
    from fer_hub.onnx_model import OnnxClassifier

    clf = OnnxClassifier(onnx_file)
    assert clf.labels == list(EMOTIONS) and clf.ARCHITECTURE == name
    torch_model = load_model(tiny_checkpoints / name)
    x = torch.randn(5, 1, 48, 48)  # a batch size the export never saw: the batch axis is dynamic
    with torch.no_grad():
        assert (clf(x).softmax(-1) - torch_model(x).softmax(-1)).abs().max() < 1e-4
    # The Predictor runs it through onnxruntime with the same results as torch.
    a = Predictor.from_pretrained(onnx_file)(ASTRONAUT)["faces"][0]["probabilities"]
    b = Predictor.from_pretrained(tiny_checkpoints / name)(ASTRONAUT)["faces"][0]["probabilities"]
    c = Predictor.from_pretrained(tiny_checkpoints / name, backend="onnx")(ASTRONAUT, explain=True)["faces"][
        0
    ]
    assert a == pytest.approx(b, abs=1e-4) and c["probabilities"] == pytest.approx(b, abs=1e-4)
    assert len(c["saliency"]) == 48  # explanations still come from the torch model
    with pytest.raises(ValueError, match="explanation maps need the PyTorch model"):
        Predictor.from_pretrained(onnx_file)(ASTRONAUT, explain=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["custom-cnn", "cnn-model2"])
def test_export_of_the_shipped_model_matches_torch_on_fer_test_images(name, shared_fer, tmp_path, capsys):
    folder = ROOT / "space" / "checkpoints" / name
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"{name} has not shipped yet")
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", str(folder), "--onnx", str(onnx_file), "--dataset", str(shared_fer)]) == 0
    assert "real inputs (n=512)" in capsys.readouterr().out


@pytest.mark.slow
def test_train_is_an_alias_of_train_hub():
    out = subprocess.run(
        [sys.executable, "-m", "fer_hub.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--recipe" in out and "--resume" in out


def test_a_count_below_one_is_reported_by_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["video", "clip.mp4", "--csv", "o.csv", "--every", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: fer-hub video" in err and "--every: must be at least 1, got 0" in err


def test_video_given_a_photo_points_to_predict(tmp_path, capsys):
    assert main(["video", str(ASTRONAUT), "--csv", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {ASTRONAUT}: a still image, not a video; use `fer-hub predict {ASTRONAUT}`"
    assert not (tmp_path / "o.csv").exists()


def test_export_refuses_a_nan_checkpoint_naming_its_folder(nan_checkpoint, tmp_path, capsys):
    assert main(["export", str(nan_checkpoint), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"{nan_checkpoint}: the weights hold NaN" in err and "wrote" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_an_output_file_the_file_system_refuses_is_found_before_the_analysis(
    tiny_checkpoints, tmp_path, capsys
):
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    too_long = tmp_path / ("x" * 300 + ".png")  # its folder exists and is writable; the name is not
    argv = ["video", str(clip), "--csv", str(tmp_path / "o.csv"), "--plot", str(too_long)]
    assert main(argv + ["--model", str(tiny_checkpoints / "custom-cnn")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --plot ") and "cannot be created (File name too long)" in err
    assert "frames" not in err  # nothing was analysed
    assert not (tmp_path / "o.csv").exists()  # the CSV it had created for the run is gone again


def test_video_of_a_raw_stream_reports_the_frames_it_decoded(tiny_checkpoints, tmp_path, capsys):
    clip = write_clip(tmp_path / "stream.mp4", frames=12, size=(192, 144), container="h264")
    out = tmp_path / "o.csv"
    assert main(["video", str(clip), "--csv", str(out), "--model", str(tiny_checkpoints / "custom-cnn")]) == 0
    err = capsys.readouterr().err
    assert "12 frames (0.5 s at 25.00 fps)" in err, err


def test_a_bug_keeps_its_traceback_while_bad_input_is_one_line(monkeypatch, capsys):
    import fer_hub.cli as cli

    def bug(*_args, **_kwargs):
        raise KeyError("box")

    monkeypatch.setattr(cli, "_predictor", bug)
    with pytest.raises(KeyError):
        main(["predict", str(ASTRONAUT)])
    assert main(["predict", "no-such-photo.jpg"]) == 2  # a user's mistake: one line, code 2
    assert capsys.readouterr().err.strip() == "error: no-such-photo.jpg: no such file or folder"


def test_predict_crops_classifies_each_image_whole(tiny_checkpoints, tmp_path):
    crops = tmp_path / "crops"
    crops.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # FER-2013-sized gray crops: no detector would find a face in them
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(crops / f"{i}.png")
    out = tmp_path / "crops.csv"
    model = str(tiny_checkpoints / "custom-cnn")
    assert main(["predict", str(crops), "--crops", "--csv", str(out), "--model", model]) == 0
    rows = read_csv(out)
    assert len(rows) == 3 and all(r["face_found"] == "True" and r["label"] in EMOTIONS for r in rows)
    assert {(r["x"], r["y"], r["w"], r["h"]) for r in rows} == {("0", "0", "48", "48")}
    assert main(["predict", str(crops), "--csv", str(out), "--model", model]) == 0  # with detection
    assert [r["face_found"] for r in read_csv(out)] == ["False"] * 3


def test_predict_and_video_csvs_name_the_probabilities_alike():
    probabilities = [c for c in PREDICT_COLUMNS if c in EMOTIONS]
    assert probabilities == list(EMOTIONS) == [c for c in VIDEO_COLUMNS if c in EMOTIONS]
    assert [c for c in VIDEO_COLUMNS if c.startswith("raw_")] == [f"raw_{e}" for e in EMOTIONS]


def test_calibrate_runs_the_training_wings_command(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path), "--dataset", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path}: no config.json; give a model folder written by train_hub.py"
    )


@pytest.mark.parametrize("flag, tried", [([], True), (["--no-class-bias"], False)])
def test_calibrate_tries_a_class_bias_unless_told_not_to(tmp_path, monkeypatch, flag, tried):
    import fer_hub.training.cli as training_cli

    (tmp_path / "config.json").write_text("{}")
    seen = {}
    monkeypatch.setattr(training_cli, "load_fer2013", lambda *a, **k: "data")
    monkeypatch.setattr(training_cli, "calibrate_folder", lambda folder, data, **k: seen.update(k))
    assert main(["calibrate", str(tmp_path), *flag]) == 0
    assert seen == {"class_bias": tried}
