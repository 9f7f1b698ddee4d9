"""fer_hub.sources: images by name from files, folders, globs, Parquet rows and dataset splits."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import face_like, png_bytes

from fer_hub.cli import main
from fer_hub.errors import InputError, NotFoundError
from fer_hub.images import ImageError
from fer_hub.labels import EMOTIONS
from fer_hub.sources import ImageReader, dataset_files, image_column, image_names


def faces(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [png_bytes(face_like(i % 7, rng)) for i in range(n)]


def write_struct_parquet(path, images: list[bytes | None], row_group_size: int = 4):
    """As `datasets` writes an Image column: {bytes, path} structs, marked in the metadata."""
    images_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "image": pa.array(
                [None if b is None else {"bytes": b, "path": None} for b in images], images_type
            ),
            "label": pa.array(range(len(images)), pa.int64()),
        }
    )
    meta = b'{"info": {"features": {"image": {"_type": "Image"}, "label": {"dtype": "int64"}}}}'
    pq.write_table(table.replace_schema_metadata({b"huggingface": meta}), path, row_group_size=row_group_size)
    return path


def test_parquet_rows_are_named_by_row_and_read_back_across_row_groups(tmp_path):
    data = faces(10)
    path = write_struct_parquet(tmp_path / "faces.parquet", data, row_group_size=3)
    names, problems = image_names([str(path)])
    assert names == [f"{path}#{i}" for i in range(10)] and problems == []
    reader = ImageReader()
    for i in (0, 4, 9, 2):  # across groups, and back to an earlier one
        got = np.asarray(reader.load(names[i]))
        assert got.shape == (48, 48, 3)
        assert (
            got[..., 0] == np.asarray(ImageReader().load(png_bytes_file(tmp_path, data[i])))[..., 0]
        ).all()
    assert image_names(names) == (names, [])  # a listed name stands for itself


def png_bytes_file(tmp_path, data: bytes) -> str:
    path = tmp_path / f"face{hash(data)}.png"
    path.write_bytes(data)
    return str(path)


def test_a_row_without_an_image_or_with_garbage_is_an_image_error_naming_the_row(tmp_path):
    path = write_struct_parquet(tmp_path / "faces.parquet", [faces(1)[0], None, b"not an image"])
    reader = ImageReader()
    with pytest.raises(ImageError, match=r"faces.parquet#1: no image bytes"):
        reader.load(f"{path}#1")
    with pytest.raises(ImageError, match=r"faces.parquet#2: not an image"):
        reader.load(f"{path}#2")
    with pytest.raises(ImageError, match=r"no row 7: the file has 3"):
        reader.load(f"{path}#7")


def test_the_image_column_is_the_one_marked_an_image_else_found_by_name_else_asked_for():
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    marked = pa.schema([("photo_a", pa.binary()), ("face", struct)]).with_metadata(
        {b"huggingface": b'{"info": {"features": {"face": {"_type": "Image"}}}}'}
    )
    assert image_column(marked) == "face"
    assert image_column(pa.schema([("id", pa.int64()), ("img", pa.binary())])) == "img"
    assert (
        image_column(pa.schema([("id", pa.int64()), ("jpeg", pa.large_binary())])) == "jpeg"
    )  # the only one
    with pytest.raises(InputError, match="several columns hold bytes .*--image-column"):
        image_column(pa.schema([("a", pa.binary()), ("b", pa.binary())]))
    with pytest.raises(InputError, match="no image column found among id, label"):
        image_column(pa.schema([("id", pa.int64()), ("label", pa.string())]))
    with pytest.raises(InputError, match="column 'id' holds int64, not encoded images"):
        image_column(pa.schema([("id", pa.int64())]), "id")


def test_a_broken_parquet_file_or_an_empty_glob_is_reported_not_raised(tmp_path):
    (tmp_path / "cut.parquet").write_bytes(b"PAR1 half a file")
    (tmp_path / "a.png").write_bytes(faces(1)[0])
    names, problems = image_names(
        [str(tmp_path / "cut.parquet"), str(tmp_path / "*.png"), str(tmp_path / "*.gif")]
    )
    assert names == [str(tmp_path / "a.png")]
    assert problems == [
        (str(tmp_path / "cut.parquet"), "not a readable Parquet file"),
        (str(tmp_path / "*.gif"), "no image or Parquet files match this pattern"),
    ]


def test_a_dataset_split_is_its_parquet_files_as_datasets_resolves_them(tiny_fer):
    (test_file,) = dataset_files(str(tiny_fer), "test")
    assert test_file.endswith("test-00000-of-00001.parquet")
    names, _ = image_names([], dataset=str(tiny_fer), split="test")
    assert len(names) == 35 and names[0] == f"{test_file}#0"
    with pytest.raises(InputError, match="splits train, validation, test: choose one with --split"):
        dataset_files(str(tiny_fer), None)
    with pytest.raises(InputError, match="no split 'dev'"):
        dataset_files(str(tiny_fer), "dev")


def test_a_folder_that_is_no_dataset_or_a_missing_one_is_refused_before_datasets_searches_it(tmp_path):
    (tmp_path / "photos" / "deep").mkdir(parents=True)
    with pytest.raises(InputError, match="not laid out like a dataset repo"):
        dataset_files(str(tmp_path / "photos"), "test")
    with pytest.raises(NotFoundError, match="no such folder"):
        dataset_files(str(tmp_path / "nowhere"), "test")
    with pytest.raises(InputError, match="give Parquet files as paths"):
        dataset_files(str(write_struct_parquet(tmp_path / "f.parquet", faces(1))), None)


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_gives_a_parquet_row_the_rows_of_the_same_image_as_a_file(tiny_checkpoints, tmp_path, capsys):
    data = faces(6, seed=3)
    folder = tmp_path / "files"
    folder.mkdir()
    for i, b in enumerate(data):
        (folder / f"{i}.png").write_bytes(b)
    path = write_struct_parquet(tmp_path / "faces.parquet", [*data, b"broken"])
    model = str(tiny_checkpoints / "custom-cnn")
    assert (
        main(["predict", str(folder), "--crops", "--model", model, "--csv", str(tmp_path / "files.csv")]) == 0
    )
    assert main(["predict", str(path), "--crops", "--model", model, "--csv", str(tmp_path / "rows.csv")]) == 0
    err = capsys.readouterr().err
    from_files, from_rows = read_rows(tmp_path / "files.csv"), read_rows(tmp_path / "rows.csv")
    assert [r["file"] for r in from_rows] == [f"{path}#{i}" for i in range(6)]
    for a, b in zip(from_files, from_rows):
        assert [a[k] for k in ["label", *EMOTIONS]] == [b[k] for k in ["label", *EMOTIONS]]
    assert f"skipped {path}#6: not an image" in err and "6 image(s), 6 face(s) found, 1 unreadable" in err


def test_predict_reads_a_dataset_split_and_says_which_splits_there_are(
    tiny_checkpoints, tiny_fer, tmp_path, capsys
):
    model = str(tiny_checkpoints / "custom-cnn")
    out = tmp_path / "test.csv"
    dataset = ["--dataset", str(tiny_fer), "--split", "test", "--crops"]
    assert main(["predict", *dataset, "--model", model, "--csv", str(out)]) == 0
    assert len(read_rows(out)) == 35
    assert main(["predict", "--dataset", str(tiny_fer), "--crops", "--model", model]) == 2
    err = capsys.readouterr().err
    assert (
        f"--dataset {tiny_fer}: it has the splits train, validation, test" in err and "Traceback" not in err
    )
    assert main(["predict", "--split", "test", str(out)]) == 2
    assert "--split goes with --dataset" in capsys.readouterr().err


def test_predict_parquet_output_holds_the_csv_rows_and_the_skipped_images(tiny_checkpoints, tmp_path, capsys):
    import pyarrow.parquet as pq

    path = write_struct_parquet(tmp_path / "faces.parquet", [*faces(4), None])
    argv = ["predict", str(path), "--crops", "--model", str(tiny_checkpoints / "custom-cnn")]
    assert main([*argv, "--csv", str(tmp_path / "rows.csv")]) == 0
    assert main([*argv, "--parquet", str(tmp_path / "rows")]) == 0
    table = pq.read_table(tmp_path / "rows").to_pylist()
    assert [r["file"] for r in table] == [f"{path}#{i}" for i in range(5)]
    assert table[-1]["error"] == "no image bytes in this row" and table[-1]["label"] is None
    for a, b in zip(read_rows(tmp_path / "rows.csv"), table):
        assert a["label"] == b["label"] and float(a["happy"]) == b["happy"] and int(a["w"]) == b["w"]
    capsys.readouterr()
    assert main([*argv, "--parquet", str(tmp_path / "rows")]) == 2  # not over an earlier run's rows
    assert "already holds Parquet files" in capsys.readouterr().err
    assert main([*argv[:1], str(tmp_path / "gone.png"), "--parquet", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "none").exists()  # a failed run leaves no empty folder
