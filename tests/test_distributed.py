"""fer_hub.distributed: the Ray engine gives the single process's rows, on a local Ray of 2 CPUs."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_hub.cli import main
from fer_hub.labels import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "space" / "examples"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_rows(a: list[dict], b: list[dict], float_columns) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert list(ra) == list(rb)
        for k in ra:
            if k in float_columns and ra[k] != "":
                assert float(ra[k]) == pytest.approx(float(rb[k]), abs=1e-5), k
            else:
                assert ra[k] == rb[k], k


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    from fer_hub.distributed import connect

    connect(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(EXAMPLES / "astronaut.jpg", folder / "nested" / "astronaut.jpg")
    shutil.copy(EXAMPLES / "two_faces.jpg", folder / "two.jpg")
    Image.fromarray(np.full((64, 64), 200, np.uint8)).save(folder / "blank.png")  # no face
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def test_engine_ray_without_ray_says_what_to_install(monkeypatch, photos, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    code = main(["predict", str(photos), "--csv", str(tmp_path / "out.csv"), "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "fer-hub[ray]"' in err and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()  # no empty answer left behind


def test_an_unreachable_cluster_is_one_line_naming_the_address(monkeypatch, photos, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process")

    def unreachable(**_):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379")

    monkeypatch.setattr(ray, "init", unreachable)
    argv = [
        "predict",
        str(photos),
        "--csv",
        str(tmp_path / "o.csv"),
        "--engine",
        "ray",
        "--address",
        "10.0.0.9:6379",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "error: could not connect to the Ray cluster at 10.0.0.9:6379" in err and "RAY_AUTH_MODE=token" in err
    )
    assert "Traceback" not in err and not (tmp_path / "o.csv").exists()


@pytest.mark.slow
def test_ray_rows_equal_the_single_process_rows_and_skip_a_bad_file_alike(
    local_ray, tiny_checkpoints, photos, tmp_path, capsys
):
    model = str(tiny_checkpoints / "cnn-model2")
    main(["predict", str(photos), "--csv", str(tmp_path / "local.csv"), "--model", model])
    local_err = capsys.readouterr().err
    code = main(
        ["predict", str(photos), "--csv", str(tmp_path / "ray.csv"), "--model", model, "--engine", "ray"]
    )
    ray_err = capsys.readouterr().err
    assert code == 0
    local, ray_rows = read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "ray.csv")
    assert [r["file"] for r in local] == [r["file"] for r in ray_rows] and len(local) == 4  # 1 + 2 + blank
    assert_same_rows(local, ray_rows, EMOTIONS)
    skipped = f"skipped {photos / 'broken.jpg'}: "
    assert skipped in local_err and skipped in ray_err
    assert "3 image(s), 3 face(s) found, 1 unreadable (skipped)" in ray_err
    assert not list(tmp_path.glob(".*.parts"))  # the parts folder goes once the CSV is written


@pytest.mark.slow
def test_ray_rows_equal_the_single_process_rows_for_parquet_rows_and_a_dataset_split(
    local_ray, tiny_checkpoints, tiny_fer, tmp_path, capsys
):
    from test_sources import faces, write_struct_parquet

    extra = write_struct_parquet(tmp_path / "extra.parquet", [*faces(3), None])  # its last row: no image
    model = str(tiny_checkpoints / "cnn-model2")
    inputs = [str(extra), "--dataset", str(tiny_fer), "--split", "validation", "--crops", "--model", model]
    assert main(["predict", *inputs, "--csv", str(tmp_path / "local.csv")]) == 0
    local_err = capsys.readouterr().err
    assert main(["predict", *inputs, "--csv", str(tmp_path / "ray.csv"), "--engine", "ray"]) == 0
    ray_err = capsys.readouterr().err
    local, ray_rows = read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "ray.csv")
    assert len(local) == 3 + 35 and local[0]["file"] == f"{extra}#0"
    assert_same_rows(local, ray_rows, EMOTIONS)
    skipped = f"skipped {extra}#3: no image bytes in this row"
    assert (
        skipped in local_err
        and skipped in ray_err
        and "38 image(s), 38 face(s) found, 1 unreadable" in ray_err
    )

    import pyarrow.parquet as pq  # --parquet: the same rows as the CSV, as the workers wrote them

    assert (
        main(["predict", *inputs, "--parquet", str(tmp_path / "rows"), "--engine", "ray", "--batch", "8"])
        == 0
    )
    table = pq.read_table(tmp_path / "rows")
    assert len(list((tmp_path / "rows").glob("*.parquet"))) > 1 and table.num_rows == 38 + 1
    written = {r["file"]: r for r in table.to_pylist()}
    assert written[f"{extra}#3"]["error"] == "no image bytes in this row"
    for row in local:
        assert written[row["file"]]["label"] == row["label"]


@pytest.mark.slow
def test_a_loaded_datasets_split_goes_to_ray_with_its_images(local_ray, tiny_checkpoints, tiny_fer, tmp_path):
    import datasets

    from fer_hub.distributed import predict_images

    split = datasets.load_dataset(str(tiny_fer), split="test").select(range(0, 35, 5))
    model = str(tiny_checkpoints / "custom-cnn")
    got = sorted(
        predict_images(split, model=model, detect=False).take_all(), key=lambda r: int(r["file"][5:])
    )
    assert [r["file"] for r in got] == [f"test#{i}" for i in range(7)]
    dataset = ["--dataset", str(tiny_fer), "--split", "test", "--crops"]
    main(["predict", *dataset, "--model", model, "--csv", str(tmp_path / "local.csv")])
    local = read_csv(tmp_path / "local.csv")[::5]
    for a, b in zip(local, got):
        assert a["label"] == b["label"] and [float(a[e]) for e in EMOTIONS] == pytest.approx(
            [b[e] for e in EMOTIONS], abs=1e-5
        )


@pytest.mark.slow
def test_a_restarted_ray_run_analyses_only_the_images_without_rows(
    local_ray, tiny_checkpoints, photos, tmp_path, monkeypatch
):
    from fer_hub import distributed
    from fer_hub.images import image_files

    files, _ = image_files([str(photos)])
    parts = tmp_path / "parts"
    model = str(tiny_checkpoints / "custom-cnn")
    first, _ = distributed.predict_rows(files[:2], parts, model=model)  # then "interrupted"
    (parts / "cut-short.parquet").write_bytes(b"PAR1 half a file")  # a part the interruption broke
    analysed = []
    real = distributed.predict_images

    def spy(paths, **options):
        analysed.extend(paths)
        return real(paths, **options)

    monkeypatch.setattr(distributed, "predict_images", spy)
    rows, problems = distributed.predict_rows(files, parts, model=model)
    assert sorted(analysed) == sorted(map(str, files[2:]))  # the first two were not redone
    assert not (parts / "cut-short.parquet").exists()
    assert rows[: len(first)] == first and {r["file"] for r in rows} == {str(f) for f in files} - {
        str(photos / "broken.jpg")
    }
    assert [p for p, _ in problems] == [str(photos / "broken.jpg")]


def assert_same_video_rows(a: list[dict], b: list[dict]) -> None:
    assert [(str(r["frame"]), str(r["track"])) for r in a] == [(str(r["frame"]), str(r["track"])) for r in b]
    floats = set(EMOTIONS) | {f"raw_{e}" for e in EMOTIONS}
    for ra, rb in zip(a, b):
        for k in ra:
            if k in floats:
                assert float(ra[k]) == pytest.approx(float(rb[k]), abs=1e-5), k
            else:
                assert str(ra[k]) == str(rb[k]), k


def test_segments_cut_at_keyframes_give_the_rows_of_one_pass(tiny_checkpoints, tmp_path):
    """What each Ray task does, without Ray: decode a segment alone (seeking to its keyframe,
    frames stored out of order), detect; then track all segments' detections in order."""
    from conftest import write_clip

    from fer_hub.predict import Predictor
    from fer_hub.video import analyze_video, detect_segment, keyframe_segments, tracked_rows

    clip = write_clip(tmp_path / "clip.mp4", frames=75, size=(320, 240), keyframe_every=25)
    predictor = Predictor.from_pretrained(tiny_checkpoints / "custom-cnn")
    segments = keyframe_segments(clip, 1.0)
    assert [(s.first, s.end) for s in segments] == [(0, 25), (25, 50), (50, 75)]
    assert len(keyframe_segments(clip, 2.0)) == 2  # a cut waits for the next keyframe
    found, decoded = [], 0
    for segment in segments:
        f, n = detect_segment(clip, predictor, segment, every=2)
        found, decoded = found + f, decoded + n
    rows = tracked_rows(found, predictor.name, predictor.uncertain_below)
    one_pass = analyze_video(clip, predictor, every=2, progress=False)
    assert decoded == one_pass.decoded == 75 and len(rows) == len(one_pass) == 38
    assert_same_video_rows(one_pass, rows)
    assert {r["track"] for r in rows} == {1}  # one face, one track across the cuts


@pytest.mark.slow
def test_ray_video_rows_equal_the_single_process_rows(local_ray, tiny_checkpoints, tmp_path, capsys):
    from conftest import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=150, size=(320, 240), keyframe_every=25)  # 6 s
    model = str(tiny_checkpoints / "cnn-model2")
    assert main(["video", str(clip), "--csv", str(tmp_path / "local.csv"), "--model", model]) == 0
    code = main(
        ["video", str(clip), "--csv", str(tmp_path / "ray.csv"), "--model", model]
        + ["--engine", "ray", "--segment-seconds", "2"]
    )
    assert code == 0
    local, on_ray = read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "ray.csv")
    assert len(local) == 150
    assert_same_video_rows(local, on_ray)
    assert {r["track"] for r in on_ray} == {"1"}
    assert "150 frames (6.0 s at 25.00 fps)" in capsys.readouterr().err


@pytest.mark.slow
def test_analyze_videos_writes_a_csv_per_clip_and_a_restart_skips_finished_ones(
    local_ray, tiny_checkpoints, tmp_path, monkeypatch
):
    from conftest import write_clip

    from fer_hub import distributed
    from fer_hub.predict import Predictor
    from fer_hub.video import analyze_video

    a = write_clip(tmp_path / "a.mp4", frames=50, size=(320, 240), keyframe_every=25)
    b = write_clip(tmp_path / "b.mp4", frames=30, size=(256, 192), keyframe_every=10)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    model = str(tiny_checkpoints / "custom-cnn")
    out = tmp_path / "rows"
    written, problems = distributed.analyze_videos([a], out, model=model, segment_seconds=1)
    assert written == {str(a): out / "a.mp4.csv"}
    submitted = []
    real = distributed._submit
    monkeypatch.setattr(
        distributed,
        "_submit",
        lambda ray, spec, path, *rest: submitted.append(path) or real(ray, spec, path, *rest),
    )
    written, problems = distributed.analyze_videos([a, broken, b], out, model=model, segment_seconds=0.5)
    assert submitted == [str(broken), str(b)]  # a.mp4 was done
    assert problems == [(str(broken), "not a video FFmpeg can read")] and set(written) == {str(a), str(b)}
    predictor = Predictor.from_pretrained(model)
    for clip in (a, b):
        rows = read_csv(written[str(clip)])
        assert_same_video_rows(analyze_video(clip, predictor, progress=False), rows)
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4.csv", "b.mp4.csv"]  # nothing half-written


@pytest.mark.slow
def test_asking_for_more_gpus_than_the_cluster_has_is_refused_not_waited_for(
    local_ray, tiny_checkpoints, photos, tmp_path, capsys
):
    out = tmp_path / "out.csv"
    argv = ["predict", str(photos), "--csv", str(out), "--model", str(tiny_checkpoints / "custom-cnn")]
    assert main(argv + ["--engine", "ray", "--gpus", "1"]) == 2
    assert "1 GPU worker(s) asked for, and the Ray cluster has 0 GPU(s)" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]  # no empty CSV, no parts folder
