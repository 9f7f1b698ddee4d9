"""Beyond one machine: the rows of `fer-hub predict` and `fer-hub video`, produced on Ray.

    from fer_hub.distributed import predict_images, analyze_videos
    rows = predict_images(["photos/"], model="space/checkpoints/cnn-model2")  # a ray.data.Dataset
    analyze_videos(["a.mp4", "b.mp4"], out_dir="rows/", segment_seconds=60)

Photos run as a Ray Data pipeline: the file list, then `map_batches` over a pool of actors,
each holding one `Predictor` whose onnxruntime sessions use the actor's CPUs only. Videos run as
Ray Core tasks, one per segment of a clip cut at keyframes (`fer_hub.video.keyframe_segments`);
each task returns its frames' raw detections and the driver tracks and smooths them in order,
as `analyze_video` does in one process, so both engines give the same rows.

The same code runs on a local Ray (started on this machine) and on a cluster (`address=` or
RAY_ADDRESS; fer_hub installed on every node). A model folder or `.onnx` file is sent to the
workers with the job, so it need not be on their disks; a Hub repo id is downloaded by each
worker. Ray is an optional extra: `pip install "fer-hub[ray]"`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FerHubError, InputError
from .onnx_model import INT8_FILE
from .results import image_rows, parquet_schema, parquet_table

__all__ = [
    "RAY_MISSING",
    "SEGMENT_SECONDS",
    "ModelSpec",
    "connect",
    "predict_images",
    "predict_rows",
    "video_rows",
    "analyze_videos",
]

RAY_MISSING = 'the Ray engine needs Ray: pip install "fer-hub[ray]"'


def require_ray():
    """The `ray` module, or an error that says what to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - ray[data], not bare ray
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None):
    """Join the Ray cluster at `address` (default: RAY_ADDRESS), or start a local Ray on this
    machine with `num_cpus` (default: all) when neither is set. Returns the `ray` module."""
    ray = require_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        try:
            ray.init(
                address=address,
                num_cpus=None if address else num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
            )
        except (ConnectionError, TimeoutError, ValueError) as e:  # Ray's own words, in one line
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise InputError(
                f"could not connect to {where} ({type(e).__name__}: {str(e).splitlines()[0]}); "
                "check --address / RAY_ADDRESS (`ray status` on the head node prints it; a cluster "
                "with token authentication also needs RAY_AUTH_MODE=token and its token, in "
                "RAY_AUTH_TOKEN or ~/.ray/auth_token), or leave both unset to start a local Ray"
            ) from None
        import logging

        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset chatter
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled"
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = sys.stderr.isatty()  # Ray Data's own bars, on a terminal
        ctx.print_on_execution_start = False
    return ray


@dataclass(frozen=True)
class ModelSpec:
    """A model as the workers get it: a local folder's or `.onnx` file's bytes travel with the
    job (a cluster's nodes do not share this machine's disk); a Hub repo id travels as a name."""

    source: str
    files: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, source: str | os.PathLike) -> ModelSpec:
        path = Path(source)
        if path.is_dir():
            names = ("config.json", "model.safetensors", INT8_FILE)  # what from_pretrained reads
            return cls(
                str(source), tuple((n, (path / n).read_bytes()) for n in names if (path / n).is_file())
            )
        if path.is_file() and path.suffix == ".onnx":
            return cls(str(source), ((path.name, path.read_bytes()),))
        return cls(str(source))

    def predictor(self, *, tta: bool | None, threads: int | None, device: str = "cpu"):
        from .predict import Predictor

        options = {
            "tta": tta,
            "threads": threads,
            "device": device,
            "backend": "torch" if device != "cpu" else "auto",
        }
        if not self.files:
            return Predictor.from_pretrained(self.source, **options)
        # The files only while loading: the Predictor holds the model in memory, and a worker
        # builds one per video segment, which would otherwise leave a copy on disk for each.
        with tempfile.TemporaryDirectory(prefix="fer_hub_model_") as tmp:
            for name, data in self.files:
                (Path(tmp) / name).write_bytes(data)
            source = Path(tmp) / self.files[0][0] if self.source.endswith(".onnx") else Path(tmp)
            return Predictor.from_pretrained(source, **options)


# ---------------------------------------------------------------------------------------------
# photos


class _PhotoWorker:
    """One Ray actor: one Predictor, loaded once, classifying batches of files."""

    def __init__(
        self, spec: list, tta: bool | None, detect: bool, threads: int, device: str, column: str | None
    ) -> None:
        import ray
        import torch

        from .sources import ImageReader

        torch.set_num_threads(threads)
        self.predictor = ray.get(spec[0]).predictor(tta=tta, threads=threads, device=device)
        self.detect = detect
        self.reader = ImageReader(column)

    def __call__(self, batch: dict[str, np.ndarray]):

        from .images import ImageError

        problems, loaded = [], []
        cells = batch.get("image", [None] * len(batch["file"]))  # images that came with the rows
        for name, cell in zip(batch["file"], cells):
            name = str(name)
            try:
                loaded.append((name, self.reader.load(name, cell)))
            except ImageError as e:  # reported and counted by the driver, as without Ray
                problems.append((name, e.reason))
        results = self.predictor.batch([im for _, im in loaded], detect=self.detect) if loaded else []
        rows = [row for (name, _), result in zip(loaded, results) for row in image_rows(name, result)]
        return parquet_table(rows, problems)


def predict_images(
    paths=(),
    *,
    model: str | os.PathLike,
    dataset: str | None = None,
    split: str | None = None,
    image_column: str | None = None,
    tta: bool | None = None,
    detect: bool = True,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: int = 1,
    gpus: int = 0,
    batch_size: int = 32,
):
    """A lazy `ray.data.Dataset` of `fer-hub predict`'s rows (PREDICT_COLUMNS, nulls for the
    empty cells, plus "error": why an image was skipped). Rows come in no particular order.

    `paths`: image files, folders, globs and Parquet files, and `dataset` (a Hub id or a local
    folder laid out like one) with its `split`, as `fer_hub.sources.image_names` lists them; an
    input that cannot be used at all raises InputError. Or `paths` is a `datasets.Dataset`
    already loaded: its images go to the workers with the rows, named "SPLIT#ROW". Parquet rows are read by the workers, so
    their files must be where every node can reach them (a shared disk, hf://, s3://, ...).

    `workers` actors (default: as many as the cluster's CPUs allow), each with `cpus_per_worker`
    CPUs for its onnxruntime threads; `gpus` > 0 runs that many actors on one GPU each instead."""
    import pyarrow as pa

    from .sources import image_names

    ray = connect(address)
    if _is_hf_dataset(paths):
        items = _hf_table(paths, image_column)
    else:
        files, problems = image_names(
            [str(p) for p in paths], dataset=dataset, split=split, column=image_column
        )
        if problems:
            raise InputError("; ".join(f"{path}: {reason}" for path, reason in problems))
        items = pa.table({"file": files})
    if not items.num_rows:
        raise InputError("no images to analyse")
    if gpus:
        have = int(ray.cluster_resources().get("GPU", 0))
        if gpus > have:  # Ray would wait for them for ever
            raise InputError(f"{gpus} GPU worker(s) asked for, and the Ray cluster has {have} GPU(s)")
        workers, resources = gpus, {"num_gpus": 1, "num_cpus": cpus_per_worker}
    else:
        available = int(ray.cluster_resources().get("CPU", 1))
        workers = workers or max(1, available // cpus_per_worker)
        resources = {"num_cpus": cpus_per_worker}
    batches = -(-items.num_rows // batch_size)
    workers = min(workers, batches)  # no actor without a batch to run
    # A block is a Parquet part of `predict_rows`: up to 16 batches each (not one per batch, a
    # million photos would leave 31,250 files), and at least two per worker to share the work.
    blocks = min(batches, max(2 * workers, -(-batches // 16)))
    ds = ray.data.from_arrow(items, override_num_blocks=blocks)
    with warnings.catch_warnings():
        # Ray 2.60 takes max_restarts only as the remote argument it calls deprecated
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return ds.map_batches(
            _PhotoWorker,
            # The model's bytes go into the object store once; each actor fetches them (a list, so
            # Ray hands the reference over unresolved and restarts no actor from it).
            fn_constructor_args=(
                [ray.put(ModelSpec.of(model))],
                tta,
                detect,
                cpus_per_worker,
                "cuda" if gpus else "cpu",
                image_column,
            ),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            # a worker that dies fails the run, which, started again, resumes (`predict_rows`)
            max_restarts=0,
            **resources,
        )


def _is_hf_dataset(obj) -> bool:
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "features")


def _hf_table(ds, column: str | None):
    """An in-memory `datasets.Dataset` as a table of its images (column "image", undecoded,
    travelling with the rows) and their names (column "file": "SPLIT#ROW")."""
    import pyarrow as pa

    from .sources import image_column  # datasets keeps the Image feature in the schema's metadata

    table = ds.select_columns([image_column(ds.data.table.schema, column)]).with_format("arrow")[:]
    name = str(ds.split) if ds.split else "dataset"
    return pa.table({"file": [f"{name}#{i}" for i in range(len(table))], "image": table.column(0)})


def _read_parts(folder: Path):
    """The rows already written to `folder` by an earlier (maybe interrupted) run; a part file
    cut short by the interruption is removed, so its images are analysed again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for part in sorted(folder.glob("*.parquet")):
        try:
            tables.append(pq.read_table(part, schema=parquet_schema()))
        except (OSError, pa.ArrowInvalid):
            part.unlink()
    return pa.concat_tables(tables) if tables else parquet_schema().empty_table()


def predict_rows(
    files: list[str],
    parts: str | os.PathLike,
    **options,
) -> tuple[list[dict], list[tuple[str, str]]]:
    """`fer-hub predict --engine ray`: the rows for `files` (image names, as
    `fer_hub.sources.image_names` lists them) in the single process's order (images in order,
    faces largest first) and (name, reason) for each unreadable one.

    Rows are written as Parquet parts to the folder `parts` while Ray works; a run that was
    interrupted and is started again analyses only the files that have no rows there yet.
    `options` go to `predict_images`."""
    parts = Path(parts)
    parts.mkdir(parents=True, exist_ok=True)
    done = set(_read_parts(parts).column("file").to_pylist())
    todo = [f for f in map(str, files) if f not in done]
    if todo:
        predict_images(todo, **options).write_parquet(str(parts))
    order = {f: i for i, f in enumerate(map(str, files))}
    rows, problems = [], []
    for row in sorted(
        _read_parts(parts).to_pylist(), key=lambda r: (order.get(r["file"], len(order)), r["face"] or 0)
    ):
        if row["file"] not in order:
            continue  # a part from another file list in the same folder
        error = row.pop("error")
        if error is not None:
            problems.append((row["file"], error))
        else:
            rows.append({k: ("" if v is None else v) for k, v in row.items()})
    return rows, problems


# ---------------------------------------------------------------------------------------------
# videos

# Seconds of video per Ray task when not told: long enough that a task's start (loading the
# model, seeking to its keyframe) is small beside its work, short enough to spread one clip
# (`benchmarks/bench_scale.py --segments` measures the choice).
SEGMENT_SECONDS = 60.0


def _detect(spec: list, path: str, segment, every: int, tta: bool | None, threads: int):
    """One Ray task: one segment of one clip, decoded and searched for faces where it runs."""
    import ray
    import torch

    from .video import detect_segment

    torch.set_num_threads(threads)
    predictor = ray.get(spec[0]).predictor(tta=tta, threads=threads)
    found, decoded = detect_segment(path, predictor, segment, every=every)
    return found, decoded, predictor.name, predictor.uncertain_below


def _submit(ray, spec_ref, path: str, segment_seconds: float, every: int, tta, cpus: int) -> list:
    from .video import keyframe_segments

    task = ray.remote(num_cpus=cpus, max_retries=0)(_detect)
    return [
        task.remote([spec_ref], path, seg, every, tta, cpus)
        for seg in keyframe_segments(path, segment_seconds)
    ]


def _gather(ray, refs: list):
    """The tracked rows of one clip from its segments' tasks, in order (`fer_hub.video.tracked_rows`)."""
    from .video import tracked_rows

    try:
        results = ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, FerHubError):  # bad input found by a worker: the same error as here
            raise e.cause from None
        raise
    detections = [d for found, *_ in results for d in found]
    _, _, name, uncertain_below = results[0]
    rows = tracked_rows(detections, name, uncertain_below)
    rows.decoded = sum(decoded for _, decoded, *_ in results)
    return rows


def video_rows(
    path: str | os.PathLike,
    *,
    model: str | os.PathLike,
    segment_seconds: float = SEGMENT_SECONDS,
    every: int = 1,
    tta: bool | None = None,
    address: str | None = None,
    cpus_per_task: int = 1,
):
    """`fer_hub.video.analyze_video`'s rows for one clip, its segments (cut at keyframes about
    `segment_seconds` apart) analysed as Ray tasks in parallel and tracked in order here."""
    ray = connect(address)
    return _gather(
        ray, _submit(ray, ray.put(ModelSpec.of(model)), str(path), segment_seconds, every, tta, cpus_per_task)
    )


def analyze_videos(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model: str | os.PathLike,
    segment_seconds: float = SEGMENT_SECONDS,
    every: int = 1,
    tta: bool | None = None,
    address: str | None = None,
    cpus_per_task: int = 1,
) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Analyse many clips at once on Ray, each into `out_dir`/<clip file name>.csv (the rows of
    `fer-hub video`). A clip whose CSV is already there is skipped, so an interrupted run
    started again carries on; each CSV is written whole or not at all. Returns
    ({clip: its CSV}, [(clip, why it was skipped)] for clips that could not be read)."""
    from .results import write_rows
    from .video import VIDEO_COLUMNS, VideoError

    ray = connect(address)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_ref = ray.put(ModelSpec.of(model))
    written, problems, pending = {}, [], []
    for clip in map(str, paths):
        csv_path = out / f"{Path(clip).name}.csv"
        written[clip] = csv_path
        if csv_path.is_file():
            continue  # done by an earlier run
        try:
            pending.append(
                (clip, csv_path, _submit(ray, spec_ref, clip, segment_seconds, every, tta, cpus_per_task))
            )
        except VideoError as e:
            problems.append((clip, e.reason))
            del written[clip]
    for clip, csv_path, refs in pending:  # every clip's tasks are queued: Ray runs them as CPUs free
        try:
            rows = _gather(ray, refs)
        except VideoError as e:  # broken part-way through
            problems.append((clip, e.reason))
            del written[clip]
            continue
        staged = csv_path.with_name(f".{csv_path.name}.tmp")
        write_rows(rows, VIDEO_COLUMNS, staged)
        os.replace(staged, csv_path)
    return written, problems
