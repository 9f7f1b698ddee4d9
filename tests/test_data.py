"""FER-2013 loading: every Hub layout we know of, label mapping by name, caching, clear errors."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from conftest import face_like, png_bytes, write_hub_dataset

from fer_hub import EMOTIONS
from fer_hub.errors import FerHubError
from fer_hub.training.data import load_fer2013

KAGGLE = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def make_rows(n: int, seed: int, *, per_class: bool = True) -> tuple[list[np.ndarray], list[str]]:
    """n synthetic 48x48 faces with their EMOTIONS names (every class present when n >= 7)."""
    rng = np.random.default_rng(seed)
    names = [EMOTIONS[i % 7] for i in range(n)] if per_class else [EMOTIONS[3]] * n
    return [face_like(EMOTIONS.index(nm), rng) for nm in names], names


def image_dataset(n: int, seed: int, class_names=EMOTIONS, column="image", label_column="label"):
    imgs, names = make_rows(n, seed)
    feats = datasets.Features(
        {column: datasets.Image(), label_column: datasets.ClassLabel(names=list(class_names))}
    )
    # Store each label under *this copy's* index for the name.
    canon = {
        c.lower()
        .replace("anger", "angry")
        .replace("happiness", "happy")
        .replace("sadness", "sad")
        .replace("surprised", "surprise"): i
        for i, c in enumerate(class_names)
    }
    labels = [canon[nm] for nm in names]
    return (
        datasets.Dataset.from_dict(
            {column: [{"bytes": png_bytes(i), "path": None} for i in imgs], label_column: labels},
            features=feats,
        ),
        imgs,
        names,
    )


def expected(imgs, names):
    return torch.from_numpy(np.stack(imgs))[:, None], torch.tensor([EMOTIONS.index(n) for n in names])


def test_image_feature_with_alphabetical_classlabel(tmp_path):
    train, imgs, names = image_dataset(21, 0)
    val, vimgs, vnames = image_dataset(14, 1)
    test, timgs, tnames = image_dataset(7, 2)
    data = load_fer2013(
        str(write_hub_dataset(tmp_path, {"train": train, "validation": val, "test": test})),
        log=lambda *_: None,
    )
    x, y = expected(imgs, names)
    assert data.x_train.dtype == torch.uint8 and data.x_train.shape == (21, 1, 48, 48)
    assert torch.equal(data.x_train, x) and torch.equal(data.y_train, y)
    assert torch.equal(data.y_val, expected(vimgs, vnames)[1])
    assert torch.equal(data.x_test, expected(timgs, tnames)[0])


def test_labels_map_by_name_when_a_copy_uses_kaggle_order_and_aliases(tmp_path):
    # Same images and meanings, different index order and spelling: the result must be identical.
    names_kaggle_aliases = ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprised", "Neutral"]
    train, imgs, names = image_dataset(
        21, 0, class_names=names_kaggle_aliases, column="img", label_column="labels"
    )
    data = load_fer2013(
        str(write_hub_dataset(tmp_path, {"train": train, "PublicTest": train})), log=lambda *_: None
    )
    assert torch.equal(data.y_train, expected(imgs, names)[1])
    assert torch.equal(data.y_val, data.y_train)  # PublicTest is the validation split


def test_default_dataset_is_the_pinned_three_split_copy():
    from fer_hub.training.data import DEFAULT_DATASET, DEFAULT_REVISION

    assert DEFAULT_DATASET == "Aaryan333/fer2013_train_publicTest_privateTest"
    assert DEFAULT_REVISION == "da8d1643649c86bfc2cffba5b744b51fdf329212"


def test_layout_of_the_default_hub_copy_loads_with_its_split_names_and_csv_order_labels(tmp_path):
    # Exactly like Aaryan333/fer2013_train_publicTest_privateTest: splits train / publicTest /
    # privateTest, an Image column and bare integer labels 0-6 in the original CSV order.
    def split(n, seed):
        imgs, names = make_rows(n, seed)
        ds = datasets.Dataset.from_dict(
            {
                "image": [{"bytes": png_bytes(i), "path": None} for i in imgs],
                "label": [KAGGLE.index(n) for n in names],
            },
            features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
        )
        return ds, expected(imgs, names)

    (train, (xt, yt)), (pub, (xv, yv)), (priv, (xs, ys)) = split(21, 0), split(14, 1), split(7, 2)
    root = write_hub_dataset(tmp_path, {"train": train, "publicTest": pub, "privateTest": priv})
    notes = []
    data = load_fer2013(str(root), log=notes.append)
    assert torch.equal(data.x_train, xt) and torch.equal(data.y_train, yt)
    assert torch.equal(data.x_val, xv) and torch.equal(data.y_val, yv)  # publicTest = validation
    assert torch.equal(data.x_test, xs) and torch.equal(data.y_test, ys)  # privateTest = test
    assert train["label"][4] == 6 and int(data.y_train[4]) == EMOTIONS.index("neutral") == 4  # by name
    assert any("original CSV order" in n for n in notes)


def test_a_folder_above_the_dataset_is_refused_with_a_hint(tmp_path):
    ds, _, _ = image_dataset(7, 0)
    repo = write_hub_dataset(tmp_path, {"train": ds})  # tmp_path/<name>/data/train-*.parquet
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match=f"is not laid out like a dataset repo; did you mean {repo}"):
        load_fer2013(str(tmp_path), log=lambda *_: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="expected data/train-"):
        load_fer2013(str(empty), log=lambda *_: None)


def test_img_bytes_column_and_val_split_name(tmp_path):
    imgs, names = make_rows(14, 3)
    ds = datasets.Dataset.from_dict(
        {"img_bytes": [png_bytes(i) for i in imgs], "labels": [EMOTIONS.index(n) for n in names]},
        features=datasets.Features(
            {"img_bytes": datasets.Value("binary"), "labels": datasets.ClassLabel(names=list(EMOTIONS))}
        ),
    )
    data = load_fer2013(str(write_hub_dataset(tmp_path, {"train": ds, "val": ds})), log=lambda *_: None)
    x, y = expected(imgs, names)
    assert torch.equal(data.x_train, x) and torch.equal(data.y_val, y)


def test_original_csv_layout_pixels_integer_labels_and_usage_column(tmp_path):
    imgs, names = make_rows(21, 4)
    usage = ["Training"] * 14 + ["PublicTest"] * 4 + ["PrivateTest"] * 3
    ds = datasets.Dataset.from_dict(
        {
            "emotion": [KAGGLE.index(n) for n in names],  # bare integers in the original CSV order
            "pixels": [" ".join(map(str, i.flatten())) for i in imgs],
            "Usage": usage,
        }
    )
    notes = []
    data = load_fer2013(str(write_hub_dataset(tmp_path, {"train": ds})), log=notes.append)
    x, y = expected(imgs, names)
    assert torch.equal(data.x_train, x[:14]) and torch.equal(data.y_train, y[:14])
    assert torch.equal(data.y_val, y[14:18]) and torch.equal(data.y_test, y[18:])
    assert any("original CSV order" in n for n in notes)


def test_string_labels_and_non_48px_rgb_images_are_normalized(tmp_path):
    rng = np.random.default_rng(5)
    rgb = [rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(7)]
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": png_bytes(a), "path": None} for a in rgb], "label": ["SAD"] * 7},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}),
    )
    data = load_fer2013(str(write_hub_dataset(tmp_path, {"train": ds, "test": ds})), log=lambda *_: None)
    assert data.x_test.shape == (7, 1, 48, 48)
    assert (data.y_test == EMOTIONS.index("sad")).all()


def test_missing_validation_becomes_seeded_stratified_tenth_of_train(tmp_path):
    train, _, names = image_dataset(140, 6)  # 20 per class
    path = str(write_hub_dataset(tmp_path, {"train": train}))
    notes = []
    a = load_fer2013(path, log=notes.append, seed=1)
    b = load_fer2013(path, log=lambda *_: None, seed=1)
    assert len(a.y_val) == 14 and len(a.y_train) == 126
    assert torch.bincount(a.y_val, minlength=7).tolist() == [2] * 7  # stratified
    assert torch.equal(a.x_val, b.x_val)  # seeded
    assert any("stratified 10%" in n for n in notes)


def test_second_load_reads_the_decode_cache(tmp_path, monkeypatch):
    import fer_hub.training.data as data_mod

    train, _, _ = image_dataset(14, 7)
    path = str(write_hub_dataset(tmp_path, {"train": train, "test": train}))
    first = load_fer2013(path, log=lambda *_: None, cache_dir=tmp_path / "cache")

    def fail(*a, **k):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data_mod, "_decode_images", fail)
    logs = []
    second = load_fer2013(path, log=logs.append, cache_dir=tmp_path / "cache")
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert any("from cache" in line for line in logs)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: datasets.Dataset.from_dict({"photo": [b"x"], "label": [0]}),
            "no image column; found columns",
        ),
        (
            lambda: datasets.Dataset.from_dict(
                {"image": [{"bytes": png_bytes(np.zeros((48, 48), np.uint8)), "path": None}], "mood": [0]},
                features=datasets.Features({"image": datasets.Image(), "mood": datasets.Value("int64")}),
            ),
            "no label column",
        ),
        (
            lambda: datasets.Dataset.from_dict(
                {"image": [{"bytes": png_bytes(np.zeros((48, 48), np.uint8)), "path": None}], "label": [0]},
                features=datasets.Features(
                    {"image": datasets.Image(), "label": datasets.ClassLabel(names=["happy", "bored"])}
                ),
            ),
            "unknown label name(s) ['bored']",
        ),
        (
            lambda: datasets.Dataset.from_dict(
                {
                    "img_bytes": [png_bytes(np.zeros((48, 48), np.uint8)), b"not a png"],
                    "label": ["happy", "sad"],
                }
            ),
            "row 1 of column 'img_bytes': cannot decode image",
        ),
        (
            lambda: datasets.Dataset.from_dict({"pixels": ["1 2 3"], "label": ["happy"]}),
            "expected 2304 space-separated pixel values, found 3",
        ),
    ],
)
def test_bad_datasets_fail_with_a_message_naming_the_problem(tmp_path, make, message):
    path = str(write_hub_dataset(tmp_path, {"train": make()}))
    with pytest.raises(ValueError) as err:
        load_fer2013(path, log=lambda *_: None)
    assert message in str(err.value)
    assert "split 'train'" in str(err.value) or "label name" in str(err.value)


def test_empty_split_is_an_error(tmp_path):
    train, _, _ = image_dataset(7, 8)
    path = str(write_hub_dataset(tmp_path, {"train": train, "test": train.select([])}))
    with pytest.raises(ValueError, match="split 'test'.* is empty"):
        load_fer2013(path, log=lambda *_: None)


def test_unreachable_dataset_says_what_to_pass_instead(tmp_path):
    with pytest.raises(FerHubError, match="--dataset"):
        load_fer2013("no-such-org/no-such-fer-dataset", log=lambda *_: None)


def test_a_local_folder_with_a_corrupt_parquet_file_names_the_folder_not_another(tmp_path):
    train, _, _ = image_dataset(7, 8)
    folder = write_hub_dataset(tmp_path, {"train": train})
    (parquet,) = Path(folder).glob("data/train*.parquet")
    parquet.write_bytes(b"PAR1 truncated")
    with pytest.raises(FerHubError) as err:
        load_fer2013(str(folder), log=lambda *_: None)
    message = str(err.value)
    assert f"could not load dataset {str(folder)!r}" in message and "parquet files are whole" in message
    assert "../shared/fer2013" not in message


@pytest.mark.slow
def test_full_fer2013_from_shared_folder(shared_fer):
    data = load_fer2013(str(shared_fer), log=lambda *_: None)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (28709, 3589, 3589)
    assert data.x_train.shape[1:] == (1, 48, 48)
    # FER-2013's known class balance: happy is the largest class, disgust the smallest.
    counts = torch.bincount(data.y_train, minlength=7)
    assert EMOTIONS[int(counts.argmax())] == "happy" and EMOTIONS[int(counts.argmin())] == "disgust"
    assert (
        counts.tolist()[EMOTIONS.index("happy")] == 7215 and counts.tolist()[EMOTIONS.index("disgust")] == 436
    )


def test_a_dataset_folder_that_is_not_there_says_where_fer2013_comes_from(tmp_path):
    from fer_hub.errors import NotFoundError
    from fer_hub.training.data import DEFAULT_DATASET

    missing = "../no-such-checkout/fer2013"  # as on a fresh clone without ../shared
    with pytest.raises(NotFoundError) as err:
        load_fer2013(missing, log=lambda *_: None)
    message = str(err.value)
    assert message.startswith(f"{missing}: no such folder") and DEFAULT_DATASET in message
    assert message.count(missing) == 1  # not offered back as the fix
