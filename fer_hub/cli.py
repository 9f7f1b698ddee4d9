"""`fer-hub`: facial-expression recognition from the shell.

    fer-hub predict photos/ --csv faces.csv              # folders (recursive) and files
    fer-hub predict --dataset ORG/NAME --split test --crops --engine ray   # a Hub dataset, on Ray
    fer-hub video clip.mp4 --csv clip.csv --plot clip.png --annotate clip_boxed.mp4
    fer-hub export space/checkpoints/custom-cnn --onnx custom-cnn.onnx
    fer-hub calibrate space/checkpoints/custom-cnn --dataset ../shared/fer2013
    fer-hub train --model custom-cnn --recipe strong ...   # same flags as train_hub.py
    fer-hub soup runs/soup runs/fine-tune-1 runs/fine-tune-2 --dataset ../shared/fer2013

`--model` takes a model folder, a Hub repo id or an `.onnx` file; the default is the CnnModel2
shipped in this repository's space/checkpoints, the Space's default too. Bad input exits with
code 2 and one line saying what was wrong; unreadable images are reported, skipped and
counted, never fatal.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import FerHubError
from .images import IMAGE_SUFFIXES
from .labels import EMOTIONS
from .results import PREDICT_COLUMNS, image_rows, write_rows

__all__ = ["main", "IMAGE_SUFFIXES", "PREDICT_COLUMNS"]

SHIPPED = Path(__file__).resolve().parents[1] / "space" / "checkpoints"


class UsageError(FerHubError):
    """Bad input from the command line: printed as one line, exit code 2."""


def _default_model() -> str:
    from .models import DEFAULT_MODEL  # the Space's default too

    folder = SHIPPED / DEFAULT_MODEL
    if not (folder / "model.safetensors").is_file():
        raise UsageError(
            f"no --model given and no shipped checkpoint at space/checkpoints/{DEFAULT_MODEL}: "
            "pass --model FOLDER, a Hub repo id ORG/NAME, or a .onnx file"
        )
    return str(folder)


def _predictor(model: str | None, tta: bool | None = None):
    from .predict import Predictor

    source = model or _default_model()
    try:
        return Predictor.from_pretrained(source, tta=tta)
    except FerHubError as e:
        raise UsageError(f"--model {source}: {e}") from None


def _check_output(path: str | None, flag: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse an output path that cannot be written before any work starts, not after it."""
    if not path:
        return
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: expected one of {', '.join(suffixes)}")
    if os.path.isdir(out):  # False, not an error, for a name the file system refuses
        raise UsageError(f"{flag} {path}: a folder; give a file path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot create its folder ({e.strerror})") from None
    try:
        existed = out.exists()
        if not os.access(out.parent, os.W_OK) or (existed and not os.access(out, os.W_OK)):
            raise UsageError(f"{flag} {path}: not writable")
        with open(out, "a"):  # create it now: a name the file system refuses is found before the work
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot be created ({e.strerror})") from None
    if not existed:
        _CREATED.append(out)


def _check_parquet_folder(path: str | None, *, resumable: bool) -> None:
    """`--parquet DIR`: a folder of its own, made now; with Ray, one an interrupted run left."""
    if not path:
        return
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--parquet {path}: a file; give a folder for the Parquet parts")
    if not resumable and folder.is_dir() and any(folder.glob("*.parquet")):
        raise UsageError(f"--parquet {path}: already holds Parquet files; give a new or empty folder")
    existed = folder.is_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--parquet {path}: cannot create it ({e.strerror})") from None
    if not existed:
        _CREATED.append(folder)
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--parquet {path}: not writable")


# Output files this command created before its work; removed again if the command fails, so a
# failed run leaves no empty file that looks like an answer.
_CREATED: list[Path] = []


def _plot_suffixes() -> tuple[str, ...]:
    from matplotlib.figure import Figure

    return tuple(f".{s}" for s in Figure().canvas.get_supported_filetypes())


# ---------------------------------------------------------------------------------------------
# subcommands


def cmd_predict(args) -> int:
    from tqdm.auto import tqdm

    from .images import ImageError
    from .sources import ImageReader, image_names

    _check_output(args.csv, "--csv")
    _check_output(args.json, "--json")
    _check_parquet_folder(args.parquet, resumable=args.engine == "ray")
    if not args.paths and not args.dataset:
        raise UsageError("give image files, folders or Parquet files, or --dataset")
    if args.split and not args.dataset:
        raise UsageError("--split goes with --dataset")
    try:
        names, problems = image_names(
            args.paths, dataset=args.dataset, split=args.split, column=args.image_column
        )
    except FerHubError as e:
        raise UsageError(f"--dataset {e}") from None
    if not names and problems:  # nothing to analyse: say why before loading a model
        raise UsageError("; ".join(f"{path}: {reason}" for path, reason in problems))
    if not names:
        raise UsageError(
            f"no images found in {' '.join(args.paths or [args.dataset])} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))} and .parquet)"
        )
    if args.engine == "ray":
        return _predict_on_ray(args, names, problems)
    predictor = _predictor(args.model, args.tta)
    reader = ImageReader(args.image_column)
    rows: list[dict] = []
    n_images = n_faces = 0
    bar = tqdm(total=len(names), desc="predicting", unit="image", disable=None, file=sys.stderr)
    for start in range(0, len(names), args.batch):
        loaded = []
        for name in names[start : start + args.batch]:
            try:
                loaded.append((name, reader.load(name)))
            except ImageError as e:
                problems.append((name, e.reason))
        n_images += len(loaded)
        results = predictor.batch([im for _, im in loaded], detect=not args.crops)
        for (name, _), result in zip(loaded, results):
            n_faces += len(result["faces"])
            rows += image_rows(name, result)
        bar.update(min(args.batch, len(names) - start))
    bar.close()
    return _report_predictions(args, rows, problems, n_images, n_faces)


def _report_predictions(args, rows: list[dict], problems: list, n_images: int, n_faces: int) -> int:
    if n_images:  # a header alone would pass for an answer
        if args.parquet and args.engine != "ray":  # Ray's parts are in that folder already
            import pyarrow.parquet as pq

            from .results import parquet_table

            pq.write_table(parquet_table(rows, problems), Path(args.parquet) / "part-00000.parquet")
        elif not args.parquet:
            write_rows(rows, PREDICT_COLUMNS, args.csv, args.json)
    for path, reason in problems:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    written = args.csv or args.json or args.parquet
    outcome = "; nothing written" if not n_images else f"; wrote {written}" if written else ""
    print(
        f"{n_images} image(s), {n_faces} face(s) found, {len(problems)} unreadable (skipped){outcome}",
        file=sys.stderr,
    )
    return 0 if n_images else 2


def _predict_on_ray(args, names: list[str], problems: list) -> int:
    """`predict --engine ray`: the same rows, from `fer_hub.distributed`. Rows land in a parts
    folder beside the output while Ray works, so an interrupted run started again skips the
    images already done; the folder goes once the output is written."""
    import shutil
    import tempfile

    from .distributed import connect, predict_rows, require_ray

    require_ray()  # before anything else: say what to install
    model = args.model or _default_model()
    _predictor(model, args.tta)  # a bad --model is reported here, in one line, not by a worker
    out = args.csv or args.json
    if args.parquet:  # the rows stay as Ray wrote them: one part per block of images
        parts = Path(args.parquet)
    elif out:
        parts = Path(out).with_name(f".{Path(out).name}.parts")
    else:
        parts = Path(tempfile.mkdtemp(prefix="fer_hub_"))
    connect(args.address)
    try:
        rows, skipped = predict_rows(
            names,
            parts,
            model=model,
            tta=args.tta,
            detect=not args.crops,
            workers=args.workers,
            gpus=args.gpus or 0,
            batch_size=args.batch,
            image_column=args.image_column,
        )
    except FerHubError:
        if parts.is_dir() and not any(parts.iterdir()) and not args.parquet:  # nothing to resume
            parts.rmdir()
        raise
    problems += skipped
    code = _report_predictions(
        args, rows, problems, len({r["file"] for r in rows}), sum(r["face"] != "" for r in rows)
    )
    if not args.parquet:
        shutil.rmtree(parts, ignore_errors=True)
    return code


def cmd_video(args) -> int:
    from .video import STILL_IMAGE, VIDEO_COLUMNS, VideoError, analyze_video, probe, track_summary

    _check_output(args.csv, "--csv")
    _check_output(args.annotate, "--annotate", (".mp4", ".mov", ".mkv"))  # containers for H.264
    if args.plot:
        _check_output(args.plot, "--plot", _plot_suffixes())
    if args.engine == "ray":
        from .distributed import require_ray

        require_ray()
        if args.annotate:
            raise UsageError("--annotate writes the video in one process: leave out --engine ray for it")
    try:
        info = probe(args.video)  # before loading a model: a bad file is found at once
        predictor = _predictor(args.model)
        if args.engine == "ray":
            from .distributed import connect, video_rows

            connect(args.address)
            rows = video_rows(
                args.video,
                model=args.model or _default_model(),
                segment_seconds=args.segment_seconds,
                every=args.every,
            )
        else:
            rows = analyze_video(args.video, predictor, every=args.every, annotate_to=args.annotate)
    except VideoError as e:
        hint = f"; use `fer-hub predict {args.video}`" if e.reason == STILL_IMAGE else ""
        raise UsageError(f"{e}{hint}") from None
    write_rows(rows, VIDEO_COLUMNS, args.csv)
    if args.plot:
        from .plots import plot_tracks

        plot_tracks(
            rows,
            args.plot,
            title=f"{Path(args.video).name} ({predictor.name}, "
            + ("every frame)" if args.every == 1 else f"every {args.every} frames)"),
        )
    tracks = track_summary(rows)
    seconds = info.duration or rows.decoded / info.fps  # a raw stream states no duration
    print(
        f"{rows.decoded} frames ({seconds:.1f} s at {info.fps:.2f} fps), every {args.every} analysed: "
        f"{len(rows)} face rows, {len(tracks)} track(s); wrote {args.csv}"
        + "".join(f", {p}" for p in (args.plot, args.annotate) if p),
        file=sys.stderr,
    )
    for t in tracks:
        shares = sorted(((t[f"share_{e}"], e) for e in EMOTIONS), reverse=True)[:3]
        print(
            f"  face {t['track']}: {t['from_s']:.1f}-{t['to_s']:.1f} s, "
            + ", ".join(f"{e} {s:.0%}" for s, e in shares if s > 0),
            file=sys.stderr,
        )
    return 0


def cmd_export(args) -> int:
    from .models import load_model
    from .onnx_model import export_onnx

    _check_output(args.onnx, "--onnx", (".onnx",))
    try:
        model = load_model(args.model)
    except FerHubError as e:
        raise UsageError(f"{args.model}: {e}") from None
    real = None
    if args.dataset:
        from .preprocess import normalize
        from .training.data import load_fer2013

        try:
            data = load_fer2013(args.dataset, log=lambda *_: None)
        except FerHubError as e:
            raise UsageError(f"--dataset {args.dataset}: {e}") from None
        x = data.x_test if data.x_test is not None else data.x_val
        real = normalize(x[: args.check_images])
    try:
        report = export_onnx(model, args.onnx, check_inputs=real)
    except RuntimeError as e:  # not the user's input: the exporter and torch disagree
        print(f"error: {e}", file=sys.stderr)
        return 1
    checks = "; ".join(
        f"{k} inputs (n={v['n']}): max |p diff| {v['max_abs_diff']:.1e}" for k, v in report.items()
    )
    print(f"wrote {args.onnx} ({model.ARCHITECTURE}); onnxruntime matches torch: {checks}")
    return 0


def cmd_export_web(args) -> int:
    from .web_export import export_web

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    sizes = export_web(args.out, models, space_url=args.space_url, webgpu=args.webgpu)
    total = sum(sizes.values())
    for name, size in sizes.items():
        print(f"  {size / 1e6:8.2f} MB  {name}")
    print(
        f"wrote {args.out}: {len(sizes)} files, {total / 1e6:.1f} MB; serve it with "
        f"`python -m http.server -d {args.out} 8000` and open http://localhost:8000"
    )
    return 0


# ---------------------------------------------------------------------------------------------


def _at_least_1(text: str) -> int:
    """argparse type: so the subcommand's own usage line reports a bad count."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _engine_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help='local: this process (default); ray: a Ray cluster, same rows (pip install "fer-hub[ray]")',
    )
    s.add_argument(
        "--address",
        help="with --engine ray: the cluster to join (default: RAY_ADDRESS, else a local Ray on this machine)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _predict_parser(sub, model_help: str) -> None:
    s = sub.add_parser("predict", help="faces and expressions in images and folders of images")
    s.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="image files, folders (searched recursively), globs, and Parquet files with an image column",
    )
    s.add_argument(
        "--dataset",
        metavar="ID_OR_FOLDER",
        help="also a dataset's images, through `datasets`: a Hub id ORG/NAME or a local folder laid out like one",
    )
    s.add_argument("--split", help="with --dataset: the split to read (needed when it has several)")
    s.add_argument(
        "--image-column",
        metavar="NAME",
        help="the image column of Parquet files (default: the one marked as images, else one named image)",
    )
    s.add_argument("--model", help=model_help)
    out = s.add_mutually_exclusive_group()
    out.add_argument(
        "--csv", metavar="OUT", help="write one row per face to this CSV (default: CSV on stdout)"
    )
    out.add_argument("--json", metavar="OUT", help="write one object per face to this JSON file")
    out.add_argument(
        "--parquet",
        metavar="DIR",
        help="write the rows as Parquet parts into this folder, skipped images as rows with an "
        '"error" (with --engine ray: as the workers write them, and a run started again skips the '
        "images with rows there)",
    )
    s.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score each face with (--tta) or without (--no-tta) its mirror image "
        "(default: the model's own scoring, chosen on validation)",
    )
    s.add_argument(
        "--crops",
        action="store_true",
        help="the images are face crops (e.g. FER-2013's): classify each whole, without face detection",
    )
    s.add_argument("--batch", type=_at_least_1, default=32, help="images per forward pass (default: 32)")
    _engine_arguments(s)
    s.add_argument(
        "--workers",
        type=_at_least_1,
        help="with --engine ray: actors, one Predictor each (default: one per CPU)",
    )
    s.add_argument(
        "--gpus",
        type=_at_least_1,
        help="with --engine ray: that many actors instead, each on a GPU of its own",
    )
    s.set_defaults(fn=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    from .distributed import SEGMENT_SECONDS

    p = argparse.ArgumentParser(prog="fer-hub", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = "model folder, Hub repo id or .onnx file (default: space/checkpoints/cnn-model2)"

    _predict_parser(sub, model_help)

    s = sub.add_parser("video", help="tracked faces and smoothed expressions over a video")
    s.add_argument("video", help="video file (mp4, webm, mov, mkv, avi, ...)")
    s.add_argument("--csv", required=True, metavar="OUT", help="one row per face per analysed frame")
    s.add_argument(
        "--every", type=_at_least_1, default=1, metavar="N", help="analyse every N-th frame (default: 1)"
    )
    s.add_argument("--plot", metavar="OUT.png", help="each face's probabilities over time")
    s.add_argument("--annotate", metavar="OUT.mp4", help="write the video with boxes and labels")
    s.add_argument("--model", help=model_help)
    _engine_arguments(s)
    s.add_argument(
        "--segment-seconds",
        type=_positive_seconds,
        default=SEGMENT_SECONDS,
        metavar="S",
        help="with --engine ray: seconds of video per task, cut at keyframes (default: %(default)s)",
    )
    s.set_defaults(fn=cmd_video)

    s = sub.add_parser("export", help="export a model to ONNX and check it against torch")
    s.add_argument("model", help="model folder or Hub repo id")
    s.add_argument("--onnx", required=True, metavar="OUT.onnx", help="where to write the ONNX file")
    s.add_argument("--dataset", help="also check parity on FER-2013 test images from this dataset")
    s.add_argument("--check-images", type=_at_least_1, default=512, help="how many (default: 512)")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("export-web", help="the static in-browser app (onnxruntime-web) as a folder to serve")
    s.add_argument("out", metavar="OUT_DIR", help="a new or empty folder")
    s.add_argument(
        "--models",
        help="comma-separated model folders or Hub repo ids, the page's default first "
        "(default: the shipped cnn-model2,custom-cnn)",
    )
    s.add_argument("--space-url", help="the Gradio Space to link to from the page")
    s.add_argument(
        "--webgpu",
        action="store_true",
        help="also bundle the WebGPU runtime (+27 MB), used where a GPU is offered",
    )
    s.set_defaults(fn=cmd_export_web)

    s = sub.add_parser(
        "calibrate",
        help="fit the temperature, class bias and 'uncertain' threshold of a model folder (fer-hub calibrate --help)",
        add_help=False,
    )
    s.set_defaults(fn=None)

    s = sub.add_parser(
        "train", help="train a model (the flags of train_hub.py; fer-hub train --help)", add_help=False
    )
    s.set_defaults(fn=None)
    s = sub.add_parser(
        "soup", help="average fine-tunes' weights into one model (fer-hub soup --help)", add_help=False
    )
    s.set_defaults(fn=None)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # everything after `train` belongs to train_hub.py's parser
        from .training.cli import main as train_main

        return train_main(argv[1:])
    if argv[:1] == ["soup"]:
        from .training.cli import soup_main

        return soup_main(argv[1:])
    if argv[:1] == ["calibrate"]:
        from .training.cli import calibrate_main

        return calibrate_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    _CREATED.clear()
    code = 1
    try:
        code = args.fn(args)
    except FerHubError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    finally:
        if code != 0:
            for out in _CREATED:
                if out.is_file() and out.stat().st_size == 0:
                    out.unlink()
                elif out.is_dir() and not any(out.iterdir()):  # --parquet's folder, still empty
                    out.rmdir()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
